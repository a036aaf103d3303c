// Ports: a virtual NIC on a network, with its MAC, fixed IPs (ipam.ts),
// port security, security groups, allowed address pairs, extra DHCP options
// and binding. Policy follows Neutron's port rules, which depend on the
// network: its owner (and admins) may set MACs, addresses, port security and
// address pairs; any member may create plain ports on a shared network.
import type { Expression, ExpressionBuilder, SqlBool } from 'kysely';
import crypto from 'node:crypto';
import type { Body } from '../resources/attributes.ts';
import { portDef, type AddressPair, type DhcpOpt } from '../resources/port.ts';
import type { AuthContext } from '../identity/context.ts';
import { owningProject } from '../identity/policy.ts';
import { isUniqueViolation, type Store, type Tx } from '../store/database.ts';
import {
  AddressPairAndPortSecurityRequired, InvalidInput, MacAddressGenerationFailure, MacAddressInUse, PolicyNotAuthorized,
  PortBound, PortSecurityAndIPRequiredForSecurityGroups, PortSecurityPortHasSecurityGroup, SecurityGroupNotFound,
  UnsupportedPortDeviceOwner,
} from '../errors.ts';
import { ResourceService } from './resource-service.ts';
import { bumped, newId, now, type ResourceModel, type Row, type Wire } from './resource-store.ts';
import { enforceQuota } from './quota-limits.ts';
import { ensureDefaultSecurityGroup } from './security-groups.ts';
import { checkNetworkTenantOwnership, loadForWriteOrNetworkOwner, visibleNetwork } from './subnets.ts';
import { assertNotL3Port, disassociateFloatingIps } from './floating-ips.ts';
import {
  allocateFixedIps, canonicalIp, lockNetworkSubnets, parseIp, refreshEui64Addresses, updateFixedIps,
  type FixedIp, type FixedIpRequest,
} from './ipam.ts';

type Eb = ExpressionBuilder<any, any>;

/** Neutron's base_mac: generated MACs are fa:16:3e:xx:xx:xx. */
const BASE_MAC = 'fa:16:3e';
const MAC_GENERATION_RETRIES = 16;
/** Binding states in which the MAC may still change (portbindings.VIF_UNPLUGGED_TYPES). */
const UNBOUND_VIF_TYPES = new Set(['unbound', 'binding_failed']);
/** Large pages are split so that one IN list stays well within both back-ends' parameter limits. */
const EXPAND_CHUNK = 5000;

/** Network devices (DHCP, routers...) are trusted: no security groups, only the network's owner may create them. */
const isNetworkDevice = (owner: string | undefined) => Boolean(owner?.startsWith('network:'));

type RenderedIp = FixedIp & { created_at: string; ip_version: number };

/**
 * Orders one port's addresses: subnets in creation order, then addresses
 * numerically. Timestamps have Neutron's one-second precision, so subnets made
 * in the same second go IPv4 first (the order auto-allocation uses), then by id.
 */
function compareFixedIps(a: RenderedIp, b: RenderedIp): number {
  if (a.subnet_id !== b.subnet_id) {
    if (a.created_at !== b.created_at) return a.created_at < b.created_at ? -1 : 1;
    if (a.ip_version !== b.ip_version) return a.ip_version - b.ip_version;
    return a.subnet_id < b.subnet_id ? -1 : 1;
  }
  const x = parseIp(a.ip_address)!.value;
  const y = parseIp(b.ip_address)!.value;
  return x < y ? -1 : x > y ? 1 : 0;
}

function kvp(raw: string): [string, string] {
  const i = raw.indexOf('=');
  const key = i < 0 ? '' : raw.slice(0, i).trim();
  if (!key) throw new InvalidInput(`'${raw}' is not of the form <key>=[value]`);
  return [key, raw.slice(i + 1).trim()];
}

/**
 * ?fixed_ips=ip_address=X&fixed_ips=subnet_id=Y (what `openstack port list
 * --fixed-ip` sends): values of one key are alternatives, and each key must be
 * satisfied by some address of the port (Neutron's _get_ports_query).
 */
function fixedIpsFilter(values: string[], eb: Eb): Expression<SqlBool> {
  const byKey = new Map<string, string[]>();
  for (const v of values) {
    const [k, val] = kvp(v);
    byKey.set(k, [...(byKey.get(k) ?? []), val]);
  }
  const conds: Expression<SqlBool>[] = [];
  const holders = (where: (q: any) => any) => eb('r.id', 'in', where(eb.selectFrom('ip_allocations as fa').select('fa.port_id')));
  const ips = byKey.get('ip_address');
  if (ips) conds.push(holders((q) => q.where('fa.ip_address', 'in', ips.map((i) => (parseIp(i) ? canonicalIp(i) : i)))));
  const subnets = byKey.get('subnet_id');
  if (subnets) conds.push(holders((q) => q.where('fa.subnet_id', 'in', subnets)));
  for (const sub of byKey.get('ip_address_substr') ?? []) {
    conds.push(holders((q) => q.where('fa.ip_address', 'like', `%${sub}%`)));
  }
  return eb.and(conds);
}

/** Neutron's get_port: the port's project and the network's owner (and admins). */
export const portModel: ResourceModel = {
  def: portDef,
  scope: (ctx, eb) => eb.or([
    eb('r.project_id', '=', ctx.projectId),
    eb('r.network_id', 'in', eb.selectFrom('networks as n').select('n.id').where('n.project_id', '=', ctx.projectId)),
  ]),
  /** fixed_ips for a whole page in one query (plus one for security groups). */
  async expand(db, rows) {
    const out = new Map<string, Wire>(rows.map((r) => [r.id, { fixed_ips: [] as FixedIp[], security_groups: [] as string[] }]));
    const ids = rows.map((r) => r.id as string);
    for (let i = 0; i < ids.length; i += EXPAND_CHUNK) {
      const chunk = ids.slice(i, i + EXPAND_CHUNK);
      const [allocs, groups] = await Promise.all([
        db.selectFrom('ip_allocations as a').innerJoin('subnets as s', 's.id', 'a.subnet_id')
          .select(['a.port_id', 'a.subnet_id', 'a.ip_address', 's.created_at', 's.ip_version']).where('a.port_id', 'in', chunk).execute(),
        db.selectFrom('port_security_groups').select(['port_id', 'security_group_id'])
          .where('port_id', 'in', chunk).orderBy('security_group_id').execute(),
      ]);
      const byPort = new Map<string, RenderedIp[]>();
      for (const a of allocs) {
        const list = byPort.get(a.port_id);
        if (list) list.push(a); else byPort.set(a.port_id, [a]);
      }
      for (const [portId, list] of byPort) {
        if (list.length > 1) list.sort(compareFixedIps);
        out.get(portId)!.fixed_ips = list.map((a) => ({ subnet_id: a.subnet_id, ip_address: a.ip_address }));
      }
      for (const g of groups) (out.get(g.port_id)!.security_groups as string[]).push(g.security_group_id);
    }
    return out;
  },
  filters: { fixed_ips: fixedIpsFilter },
};

/** oslo.policy's rendering of the composed rule for the attributes that were refused. */
function denied(action: 'create' | 'update', attrs: string[]): PolicyNotAuthorized {
  let rule = `rule:${action}_port`;
  for (const a of attrs) rule = `(${rule} and rule:${action}_port:${a})`;
  return new PolicyNotAuthorized(rule);
}

/**
 * Attribute rules that depend on the network (neutron/conf/policies/port.py):
 * MAC, addresses, port security, address pairs and network device owners are
 * for admins and the network's owner; a member on a shared network may still
 * name a subnet for its address on create. A MAC changes by admins only.
 */
function authorizeOnNetwork(ctx: AuthContext, network: Row, body: Body, action: 'create' | 'update'): void {
  if (ctx.isAdmin) return;
  const owner = network.project_id === ctx.projectId;
  const refused: string[] = [];
  if ('mac_address' in body && (action === 'update' || !owner)) refused.push('mac_address');
  if (!owner) {
    const fixed = body.fixed_ips as FixedIpRequest[] | undefined;
    if (fixed !== undefined) {
      if (action === 'update') refused.push('fixed_ips');
      if (fixed.some((f) => f.ip_address !== undefined)) refused.push(...(action === 'create' ? ['fixed_ips', 'fixed_ips:ip_address'] : ['fixed_ips:ip_address']));
    }
    if ('port_security_enabled' in body) refused.push('port_security_enabled');
    if (isNetworkDevice(body.device_owner as string | undefined)) refused.push('device_owner');
    if ((body.allowed_address_pairs as AddressPair[] | undefined)?.length) refused.push('allowed_address_pairs');
  }
  if (refused.length) throw denied(action, refused);
}

async function macInUse(tx: Tx, networkId: string, mac: string): Promise<boolean> {
  return Boolean(await tx.selectFrom('ports').select('id').where('network_id', '=', networkId).where('mac_address', '=', mac).executeTakeFirst());
}

function randomMac(): string {
  return `${BASE_MAC}:${[...crypto.randomBytes(3)].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
}

/** Pairs as stored: the port's MAC where none was given (as Neutron fills it in). */
function storedPairs(pairs: AddressPair[], mac: string): AddressPair[] {
  return pairs.map((p) => ({ ip_address: p.ip_address, mac_address: p.mac_address ?? mac }));
}

/** Options with no value are not stored (except the ones that may be blank), as in extradhcpopt_db. */
const keepOpt = (o: DhcpOpt) => (['router', 'classless-static-route'].includes(o.opt_name) ? o.opt_value !== null : Boolean(o.opt_value));

/** Neutron's update of extra_dhcp_opts: by (name, version), null value deletes, others replace or add. */
function mergeDhcpOpts(current: DhcpOpt[], changes: DhcpOpt[]): DhcpOpt[] {
  const out = current.map((o) => ({ ...o }));
  for (const c of changes) {
    const i = out.findIndex((o) => o.opt_name === c.opt_name && o.ip_version === c.ip_version);
    if (i >= 0) {
      if (c.opt_value === null) out.splice(i, 1); else out[i].opt_value = c.opt_value;
    } else if (keepOpt(c)) {
      out.push(c);
    }
  }
  return out;
}

export class PortService extends ResourceService {
  constructor(store: Store) {
    super(store, portModel);
  }

  /**
   * The groups a port ends up in (Neutron's _portsec_ext_port_create_processing
   * and _get_security_groups_on_port): none without port security or for
   * network devices, the project's default group when none are named, else
   * the named ones, which must be the project's own or shared.
   */
  private async securityGroupsFor(
    tx: Tx, ctx: AuthContext, projectId: string, requested: string[] | undefined, portSecurity: boolean, owner: string,
  ): Promise<string[]> {
    if (!portSecurity) {
      if (requested?.length) throw new PortSecurityAndIPRequiredForSecurityGroups();
      return [];
    }
    if (isNetworkDevice(owner)) return [];
    if (requested === undefined) return [await ensureDefaultSecurityGroup(this.store, tx, projectId)];
    if (requested.length === 0) return [];
    const found = await tx.selectFrom('security_groups').select(['id', 'project_id', 'shared']).where('id', 'in', requested).execute();
    const valid = new Set(found.filter((g) => ctx.isAdmin || g.project_id === projectId || g.shared).map((g) => g.id));
    const missing = requested.filter((id) => !valid.has(id));
    if (missing.length) throw new SecurityGroupNotFound(missing.join(', '));
    return requested;
  }

  private async bindSecurityGroups(tx: Tx, portId: string, groups: string[]): Promise<void> {
    if (groups.length) {
      await tx.insertInto('port_security_groups').values(groups.map((g) => ({ port_id: portId, security_group_id: g }))).execute();
    }
  }

  protected async createOne(tx: Tx, ctx: AuthContext, body: Body): Promise<string> {
    const projectId = owningProject(ctx, body);
    const network = await visibleNetwork(tx, ctx, body.network_id as string);
    checkNetworkTenantOwnership(ctx, network, projectId, 'port');
    authorizeOnNetwork(ctx, network, body, 'create');
    // Ports Neutron owns itself (project '': router gateways, floating IP
    // addresses) are bounded by the router and floatingip quotas instead.
    if (projectId !== '') await enforceQuota(tx, 'port', projectId);

    const id = newId();
    const deviceOwner = body.device_owner as string;
    // Lock the subnets before anything else the allocation depends on (see lockNetworkSubnets).
    const subnets = await lockNetworkSubnets(tx, this.store.dialect, network.id);
    const portSecurity = body.port_security_enabled === undefined ? Boolean(network.port_security_enabled) : Boolean(body.port_security_enabled);
    const pairs = body.allowed_address_pairs as AddressPair[];
    const ts = now();
    const row = (mac: string) => ({
      id, project_id: projectId, name: body.name as string, description: body.description as string,
      // Neutron answers a create with revision 1: binding bumps it once after the insert.
      created_at: ts, updated_at: ts, revision_number: 1,
      network_id: network.id, mac_address: mac, admin_state_up: body.admin_state_up ? 1 : 0, status: 'DOWN',
      device_id: body.device_id as string, device_owner: deviceOwner,
      port_security_enabled: portSecurity ? 1 : 0,
      allowed_address_pairs: JSON.stringify(storedPairs(pairs, mac)),
      extra_dhcp_opts: JSON.stringify((body.extra_dhcp_opts as DhcpOpt[]).filter(keepOpt)),
      binding_host_id: body['binding:host_id'] as string,
      binding_vnic_type: body['binding:vnic_type'] as string,
      binding_vif_type: 'unbound',
      binding_vif_details: '{}',
      binding_profile: JSON.stringify(body['binding:profile'] ?? {}),
    });
    // The (network_id, mac_address) unique index decides, concurrent creates included:
    // a taken MAC inserts nothing; a chosen one is refused, a generated one drawn again.
    const insert = async (mac: string) => Number((await tx.insertInto('ports').values(row(mac))
      .onConflict((oc) => oc.doNothing()).executeTakeFirst()).numInsertedOrUpdatedRows ?? 0n) === 1;
    let mac = body.mac_address as string | undefined;
    if (mac !== undefined) {
      if (!(await insert(mac))) throw new MacAddressInUse(network.id, mac);
    } else {
      for (let i = 0; ; i++) {
        if (i === MAC_GENERATION_RETRIES) throw new MacAddressGenerationFailure(network.id);
        mac = randomMac();
        if (await insert(mac)) break;
      }
    }
    await allocateFixedIps(tx, { id, network_id: network.id, mac_address: mac, device_owner: deviceOwner },
      subnets, body.fixed_ips as FixedIpRequest[] | undefined);
    if (pairs.length && !portSecurity) throw new AddressPairAndPortSecurityRequired();
    const groups = await this.securityGroupsFor(tx, ctx, projectId, body.security_groups as string[] | undefined, portSecurity, deviceOwner);
    await this.bindSecurityGroups(tx, id, groups);
    return id;
  }

  protected async updateOne(tx: Tx, ctx: AuthContext, row: Row, body: Body): Promise<void> {
    const network = await tx.selectFrom('networks').selectAll().where('id', '=', row.network_id).executeTakeFirstOrThrow();
    authorizeOnNetwork(ctx, network, body, 'update');
    const owner = (body.device_owner as string | undefined) ?? row.device_owner;
    const set: Record<string, unknown> = {};

    const newMac = body.mac_address as string | undefined;
    if (newMac !== undefined && newMac !== row.mac_address) {
      if (!UNBOUND_VIF_TYPES.has(row.binding_vif_type)) throw new PortBound(row.id, row.binding_vif_type, row.mac_address, newMac);
      if (isNetworkDevice(owner)) throw new UnsupportedPortDeviceOwner('mac address update', owner, row.id);
      if (await macInUse(tx, row.network_id, newMac)) throw new MacAddressInUse(row.network_id, newMac);
      set.mac_address = newMac;
    }
    const mac = newMac ?? row.mac_address;

    const macChanged = set.mac_address !== undefined;
    if (body.fixed_ips !== undefined || macChanged) {
      const subnets = await lockNetworkSubnets(tx, this.store.dialect, row.network_id);
      const addressing = { id: row.id, network_id: row.network_id, mac_address: mac, device_owner: owner };
      if (body.fixed_ips !== undefined) {
        const current = await tx.selectFrom('ip_allocations').select(['subnet_id', 'ip_address']).where('port_id', '=', row.id).execute();
        await updateFixedIps(tx, addressing, subnets, current, body.fixed_ips as FixedIpRequest[]);
      }
      if (macChanged) await refreshEui64Addresses(tx, addressing, subnets);
    }

    const portSecurity = body.port_security_enabled === undefined ? Boolean(row.port_security_enabled) : Boolean(body.port_security_enabled);
    const pairs = body.allowed_address_pairs as AddressPair[] | undefined;
    const groups = body.security_groups as string[] | undefined;
    if (!portSecurity) {
      // ML2's _portsec_ext_port_update_processing: nothing may depend on port security once it is off.
      if (pairs !== undefined ? pairs.length > 0 : JSON.parse(row.allowed_address_pairs).length > 0) {
        throw new AddressPairAndPortSecurityRequired();
      }
      if (groups?.length) throw new PortSecurityAndIPRequiredForSecurityGroups();
      if (groups === undefined) {
        const bound = await tx.selectFrom('port_security_groups').select('port_id').where('port_id', '=', row.id).limit(1).executeTakeFirst();
        if (bound) throw new PortSecurityPortHasSecurityGroup();
      }
    }
    if (groups !== undefined) {
      const resolved = await this.securityGroupsFor(tx, ctx, row.project_id, groups, portSecurity, owner);
      await tx.deleteFrom('port_security_groups').where('port_id', '=', row.id).execute();
      await this.bindSecurityGroups(tx, row.id, resolved);
    }

    for (const k of ['name', 'description', 'device_id', 'device_owner'] as const) if (k in body) set[k] = body[k];
    if ('admin_state_up' in body) set.admin_state_up = body.admin_state_up ? 1 : 0;
    if ('port_security_enabled' in body) set.port_security_enabled = portSecurity ? 1 : 0;
    if (pairs !== undefined) set.allowed_address_pairs = JSON.stringify(storedPairs(pairs, mac));
    if (body.extra_dhcp_opts !== undefined) {
      set.extra_dhcp_opts = JSON.stringify(mergeDhcpOpts(JSON.parse(row.extra_dhcp_opts), body.extra_dhcp_opts as DhcpOpt[]));
    }
    if ('binding:host_id' in body) set.binding_host_id = body['binding:host_id'];
    if ('binding:vnic_type' in body) set.binding_vnic_type = body['binding:vnic_type'];
    if ('binding:profile' in body) set.binding_profile = JSON.stringify(body['binding:profile'] ?? {});
    try {
      await tx.updateTable('ports').set({ ...set, ...bumped(row) }).where('id', '=', row.id).execute();
    } catch (e) {
      if (isUniqueViolation(e) && newMac) throw new MacAddressInUse(row.network_id, newMac);
      throw e;
    }
  }

  /** Addresses and security group bindings go with the port (foreign keys cascade). */
  protected async deleteOne(tx: Tx, ctx: AuthContext, row: Row): Promise<void> {
    // L3 hook: floating IPs on this port let go of it (Neutron's disassociate_floatingips).
    await disassociateFloatingIps(tx, this.store, ctx, row.id);
    await tx.deleteFrom('ports').where('id', '=', row.id).execute();
  }

  /**
   * delete_port also admits the network's owner (NET_OWNER_MEMBER); update_port
   * does not. Router interfaces, gateways and floating IP ports are deleted
   * through their own API, never the port API (ServicePortInUse) — services
   * that own them use deleteWithin, which does not come through here.
   */
  protected override async lockForWrite(tx: Tx, ctx: AuthContext, id: string, action: 'update' | 'delete'): Promise<Row> {
    if (action === 'update') return super.lockForWrite(tx, ctx, id, action);
    const row = await loadForWriteOrNetworkOwner(tx, this.store.dialect, this.model, ctx, id, action);
    await assertNotL3Port(tx, row);
    return row;
  }
}

