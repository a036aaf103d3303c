// Security group rules: Neutron's validation (protocol/port/ICMP/remote
// combinations), duplicate detection, and concurrency without spurious
// conflicts. Two rules are "the same" when their fingerprint is; a unique index
// on (group, fingerprint) makes concurrent creates of distinct rules all succeed
// and concurrent duplicates fail exactly once, with no lock on the group beyond
// the revision bump.
import { formatNet, parseNet } from './ipam.ts';
import type { Body } from '../resources/attributes.ts';
import { IP_PROTOCOLS, securityGroupRuleDef } from '../resources/security-group.ts';
import type { AuthContext } from '../identity/context.ts';
import type { Store, Tx } from '../store/database.ts';
import {
  ResourceNotFound, SecurityGroupInvalidIcmpValue, SecurityGroupInvalidPortRange, SecurityGroupInvalidPortValue,
  SecurityGroupInvalidProtocolForPortRange, SecurityGroupMissingIcmpType, SecurityGroupProtocolRequiredWithPorts,
  SecurityGroupRemoteAddressGroupAndRemoteIpPrefix, SecurityGroupRemoteGroupAndRemoteIpPrefix,
  SecurityGroupRuleExists, SecurityGroupRuleParameterConflict, PolicyNotAuthorized,
} from '../errors.ts';
import { ResourceService, recordResourceChange } from './resource-service.ts';
import { bumpRevision, bumped, newId, now, type ResourceModel, type Row } from './resource-store.ts';
import { enforceQuota } from './quota-limits.ts';
import { owningProject } from '../identity/policy.ts';

const PORT_PROTOCOLS = new Set(['tcp', 'udp', 'udplite', 'sctp', 'dccp', '6', '17', '136', '132', '33']);
const ICMP_PROTOCOLS = new Set(['icmp', 'ipv6-icmp', 'icmpv6', '1', '58']);

export interface RuleSpec {
  direction: 'ingress' | 'egress';
  ethertype: 'IPv4' | 'IPv6';
  protocol: string | null;
  port_range_min: number | null;
  port_range_max: number | null;
  remote_ip_prefix: string | null;
  normalized_cidr: string | null;
  remote_group_id: string | null;
  remote_address_group_id: string | null;
}

/** Checks a rule's combination of fields as Neutron does; returns it with normalized_cidr. Pure. */
export function validateRule(body: Body): RuleSpec {
  const r = {
    direction: body.direction as RuleSpec['direction'],
    ethertype: (body.ethertype ?? 'IPv4') as RuleSpec['ethertype'],
    protocol: (body.protocol ?? null) as string | null,
    port_range_min: (body.port_range_min ?? null) as number | null,
    port_range_max: (body.port_range_max ?? null) as number | null,
    remote_ip_prefix: (body.remote_ip_prefix ?? null) as string | null,
    remote_group_id: (body.remote_group_id ?? null) as string | null,
    remote_address_group_id: (body.remote_address_group_id ?? null) as string | null,
  };
  const remotes = [r.remote_ip_prefix, r.remote_group_id, r.remote_address_group_id].filter((x) => x !== null).length;
  if (remotes > 1) {
    if (r.remote_address_group_id) throw new SecurityGroupRemoteAddressGroupAndRemoteIpPrefix();
    throw new SecurityGroupRemoteGroupAndRemoteIpPrefix();
  }
  const hasPorts = r.port_range_min !== null || r.port_range_max !== null;
  if (hasPorts && r.protocol === null) throw new SecurityGroupProtocolRequiredWithPorts();
  if (r.protocol !== null && PORT_PROTOCOLS.has(r.protocol)) {
    for (const p of [r.port_range_min, r.port_range_max]) if (p === 0) throw new SecurityGroupInvalidPortValue(0);
    if (r.port_range_min !== null && r.port_range_max !== null && r.port_range_min > r.port_range_max) {
      throw new SecurityGroupInvalidPortRange();
    }
    // A single bound means that one port, as the CLI's --dst-port 22 sends it.
    if (r.port_range_min !== null && r.port_range_max === null) r.port_range_max = r.port_range_min;
    if (r.port_range_max !== null && r.port_range_min === null) r.port_range_min = r.port_range_max;
  } else if (r.protocol !== null && ICMP_PROTOCOLS.has(r.protocol)) {
    if (r.port_range_min !== null && r.port_range_min > 255) throw new SecurityGroupInvalidIcmpValue('type', 'port_range_min', r.port_range_min);
    if (r.port_range_max !== null && r.port_range_max > 255) throw new SecurityGroupInvalidIcmpValue('code', 'port_range_max', r.port_range_max);
    if (r.port_range_max !== null && r.port_range_min === null) throw new SecurityGroupMissingIcmpType(r.port_range_max);
  } else if (hasPorts) {
    throw new SecurityGroupInvalidProtocolForPortRange(r.protocol!);
  }
  let normalized: string | null = null;
  if (r.remote_ip_prefix !== null) {
    const net = parseNet(r.remote_ip_prefix)!; // the converter accepted it
    if ((net.version === 4 ? 'IPv4' : 'IPv6') !== r.ethertype) throw new SecurityGroupRuleParameterConflict(r.ethertype, r.remote_ip_prefix);
    normalized = formatNet(net);
  }
  return { ...r, normalized_cidr: normalized };
}

/** What makes two rules equal: protocol names and numbers compare alike, prefixes by network. Pure. */
export function ruleFingerprint(r: RuleSpec): string {
  const proto = r.protocol === null ? null : r.protocol in IP_PROTOCOLS ? String(IP_PROTOCOLS[r.protocol]) : r.protocol;
  return JSON.stringify([r.direction, r.ethertype, proto, r.port_range_min, r.port_range_max, r.normalized_cidr,
    r.remote_group_id, r.remote_address_group_id]);
}

/** A rule is visible to its own project and to the owner of its group. */
export const securityGroupRuleModel: ResourceModel = {
  def: securityGroupRuleDef,
  scope: (ctx, eb) => eb.or([
    eb('r.project_id', '=', ctx.projectId),
    eb('r.security_group_id', 'in', eb.selectFrom('security_groups').select('id').where('project_id', '=', ctx.projectId)),
  ]),
};

/** Inserts a rule unless an equal one exists; returns the new id or throws SecurityGroupRuleExists. */
export async function insertRule(
  tx: Tx, groupId: string, projectId: string, spec: RuleSpec, description: string | null,
): Promise<string> {
  const id = newId();
  const ts = now();
  const fingerprint = ruleFingerprint(spec);
  const r = await tx.insertInto('security_group_rules').values({
    id, project_id: projectId, security_group_id: groupId, ...spec, description, fingerprint,
    created_at: ts, updated_at: ts, revision_number: 0,
  }).onConflict((oc) => oc.doNothing()).executeTakeFirst();
  if (Number(r.numInsertedOrUpdatedRows ?? 0n) === 1) return id;
  const existing = await tx.selectFrom('security_group_rules').select('id')
    .where('security_group_id', '=', groupId).where('fingerprint', '=', fingerprint).executeTakeFirstOrThrow();
  throw new SecurityGroupRuleExists(existing.id);
}

export class SecurityGroupRuleService extends ResourceService {
  constructor(store: Store) {
    super(store, securityGroupRuleModel);
  }

  /** The group the rule goes into: visible to the caller, else SecurityGroupNotFound. */
  private async groupFor(tx: Tx, ctx: AuthContext, id: string): Promise<Row> {
    const group = await tx.selectFrom('security_groups').selectAll().where('id', '=', id).executeTakeFirst();
    if (!group || (!ctx.isAdmin && group.project_id !== ctx.projectId)) throw new ResourceNotFound('security_group', id);
    return group;
  }

  protected async createOne(tx: Tx, ctx: AuthContext, body: Body): Promise<string> {
    const spec = validateRule(body);
    const group = await this.groupFor(tx, ctx, body.security_group_id as string);
    if (spec.remote_group_id) await this.groupFor(tx, ctx, spec.remote_group_id);
    if (spec.remote_address_group_id) {
      const ag = await tx.selectFrom('address_groups').select(['id', 'project_id']).where('id', '=', spec.remote_address_group_id).executeTakeFirst();
      if (!ag || (!ctx.isAdmin && ag.project_id !== ctx.projectId)) throw new ResourceNotFound('address_group', spec.remote_address_group_id);
    }
    const projectId = body.project_id || body.tenant_id ? owningProject(ctx, body) : group.project_id;
    await enforceQuota(tx, 'security_group_rule', projectId);
    const id = await insertRule(tx, group.id, projectId, spec, (body.description as string) ?? '');
    await this.groupChanged(tx, group.id);
    return id;
  }

  protected async updateOne(tx: Tx, _ctx: AuthContext, row: Row, body: Body): Promise<void> {
    await tx.updateTable('security_group_rules').set({ description: (body.description as string) ?? row.description, ...bumped(row) })
      .where('id', '=', row.id).execute();
  }

  protected async deleteOne(tx: Tx, ctx: AuthContext, row: Row): Promise<void> {
    if (!ctx.isAdmin && !ctx.canWrite) throw new PolicyNotAuthorized('rule:delete_security_group_rule');
    await tx.deleteFrom('security_group_rules').where('id', '=', row.id).execute();
    await this.groupChanged(tx, row.security_group_id);
  }

  /** A rule change is a change of its group: the revision agents compare moves. */
  private async groupChanged(tx: Tx, groupId: string): Promise<void> {
    await bumpRevision(tx, 'security_groups', groupId);
    await recordResourceChange(tx, this.store, 'security_groups', 'security_group', groupId, 'update');
  }
}
