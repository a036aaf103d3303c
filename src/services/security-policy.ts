// The security-group read model an agent compiles its firewall from: for each
// port, its addresses and groups; for each group, its rules; for each remote
// group, the addresses of its member ports; for each address group, its CIDRs.
// Kept normalized (groups and member sets once, not copied into every port) so
// that reading the policy of thousands of ports is a handful of queries, and
// so that a remote-group membership change is one set update in the data plane.
import type { Db, Tx } from '../store/database.ts';
import { ROUTER_PORT_OWNERS } from './ipam.ts';
import type { RuleSpec } from './security-group-rules.ts';

export interface PortSecurity {
  id: string;
  network_id: string;
  mac_address: string;
  fixed_ips: string[];
  /** allowed_address_pairs: extra sources the port may send from. */
  allowed_address_pairs: Array<{ ip_address: string; mac_address: string }>;
  port_security_enabled: boolean;
  security_groups: string[];
}

/** A rule as the data plane matches it: remote_ip_prefix is the normalized network. */
export type Rule = Omit<RuleSpec, 'normalized_cidr'> & { id: string };

export interface GroupPolicy {
  id: string;
  stateful: boolean;
  revision_number: number;
  rules: Rule[];
}

export interface SecurityPolicy {
  ports: PortSecurity[];
  groups: Map<string, GroupPolicy>;
  /** remote group id → addresses of the ports in it (fixed IPs and allowed pairs). */
  remoteGroupMembers: Map<string, string[]>;
  /** address group id → CIDRs. */
  addressGroups: Map<string, string[]>;
}

const chunks = <T>(items: T[], size = 500): T[][] =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));

/**
 * Reads the policy of the given ports (all VM ports when omitted). Router and
 * DHCP ports are network devices: they carry no security groups.
 */
export async function loadSecurityPolicy(db: Db | Tx, opts: { portIds?: string[]; networkIds?: string[] } = {}): Promise<SecurityPolicy> {
  let q = db.selectFrom('ports').select(['id', 'network_id', 'mac_address', 'allowed_address_pairs', 'port_security_enabled', 'device_owner']);
  if (opts.portIds) q = q.where('id', 'in', opts.portIds.length ? opts.portIds : ['']);
  if (opts.networkIds) q = q.where('network_id', 'in', opts.networkIds.length ? opts.networkIds : ['']);
  const portRows = (await q.orderBy('id').execute()).filter((p) => !ROUTER_PORT_OWNERS.has(p.device_owner) && !p.device_owner.startsWith('network:'));
  const ids = portRows.map((p) => p.id);

  const ips = new Map<string, string[]>();
  const membership = new Map<string, string[]>();
  for (const part of chunks(ids)) {
    for (const a of await db.selectFrom('ip_allocations').select(['port_id', 'ip_address']).where('port_id', 'in', part).execute()) {
      (ips.get(a.port_id) ?? ips.set(a.port_id, []).get(a.port_id)!).push(a.ip_address);
    }
    for (const m of await db.selectFrom('port_security_groups').select(['port_id', 'security_group_id']).where('port_id', 'in', part).execute()) {
      (membership.get(m.port_id) ?? membership.set(m.port_id, []).get(m.port_id)!).push(m.security_group_id);
    }
  }
  const ports: PortSecurity[] = portRows.map((p) => ({
    id: p.id,
    network_id: p.network_id,
    mac_address: p.mac_address,
    fixed_ips: (ips.get(p.id) ?? []).sort(),
    allowed_address_pairs: JSON.parse(p.allowed_address_pairs),
    port_security_enabled: Boolean(p.port_security_enabled),
    security_groups: (membership.get(p.id) ?? []).sort(),
  }));

  const groupIds = [...new Set(ports.flatMap((p) => p.security_groups))];
  const groups = new Map<string, GroupPolicy>();
  for (const part of chunks(groupIds)) {
    for (const g of await db.selectFrom('security_groups').select(['id', 'stateful', 'revision_number']).where('id', 'in', part).execute()) {
      groups.set(g.id, { id: g.id, stateful: Boolean(g.stateful), revision_number: g.revision_number, rules: [] });
    }
    const rules = await db.selectFrom('security_group_rules')
      .select(['id', 'security_group_id', 'direction', 'ethertype', 'protocol', 'port_range_min', 'port_range_max',
        'remote_ip_prefix', 'normalized_cidr', 'remote_group_id', 'remote_address_group_id'])
      .where('security_group_id', 'in', part).orderBy('id').execute();
    for (const r of rules) {
      groups.get(r.security_group_id)?.rules.push({
        id: r.id, direction: r.direction as Rule['direction'], ethertype: r.ethertype as Rule['ethertype'],
        protocol: r.protocol, port_range_min: r.port_range_min, port_range_max: r.port_range_max,
        // The data plane matches on the normalized network, never on host bits.
        remote_ip_prefix: r.normalized_cidr, remote_group_id: r.remote_group_id, remote_address_group_id: r.remote_address_group_id,
      });
    }
  }

  const allRules = [...groups.values()].flatMap((g) => g.rules);
  const remoteIds = [...new Set(allRules.map((r) => r.remote_group_id).filter((x): x is string => x !== null))];
  const remoteGroupMembers = new Map<string, string[]>(remoteIds.map((id) => [id, []]));
  for (const part of chunks(remoteIds)) {
    const members = await db.selectFrom('port_security_groups as m')
      .innerJoin('ports as p', 'p.id', 'm.port_id')
      .leftJoin('ip_allocations as a', 'a.port_id', 'm.port_id')
      .select(['m.security_group_id', 'a.ip_address', 'p.allowed_address_pairs'])
      .where('m.security_group_id', 'in', part).execute();
    for (const m of members) {
      const set = remoteGroupMembers.get(m.security_group_id)!;
      if (m.ip_address) set.push(m.ip_address);
      for (const pair of JSON.parse(m.allowed_address_pairs) as Array<{ ip_address: string }>) set.push(pair.ip_address);
    }
  }
  for (const [id, list] of remoteGroupMembers) remoteGroupMembers.set(id, [...new Set(list)].sort());

  const agIds = [...new Set(allRules.map((r) => r.remote_address_group_id).filter((x): x is string => x !== null))];
  const addressGroups = new Map<string, string[]>(agIds.map((id) => [id, []]));
  for (const part of chunks(agIds)) {
    for (const a of await db.selectFrom('address_group_addresses').selectAll().where('address_group_id', 'in', part).orderBy('address').execute()) {
      addressGroups.get(a.address_group_id)!.push(a.address);
    }
  }
  return { ports, groups, remoteGroupMembers, addressGroups };
}
