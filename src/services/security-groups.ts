// Security groups: Neutron's default group per project (created on first use,
// exactly once even when first uses race), the default rules of new groups,
// and the in-use / default-group protections.
import type { Body } from '../resources/attributes.ts';
import { securityGroupDef } from '../resources/security-group.ts';
import type { AuthContext } from '../identity/context.ts';
import { owningProject } from '../identity/policy.ts';
import type { Store, Tx } from '../store/database.ts';
import { SecurityGroupCannotRemoveDefault, SecurityGroupCannotUpdateDefault, SecurityGroupInUse } from '../errors.ts';
import { ResourceService, recordResourceChange } from './resource-service.ts';
import { bumped, newId, now, renderRows, type ListQuery, type Page, type ResourceModel, type Row, type Wire } from './resource-store.ts';
import { enforceQuota } from './quota-limits.ts';
import { insertRule, securityGroupRuleModel, validateRule } from './security-group-rules.ts';

const EGRESS_ANY = [
  { direction: 'egress', ethertype: 'IPv4' },
  { direction: 'egress', ethertype: 'IPv6' },
] as const;

export const securityGroupModel: ResourceModel = {
  def: securityGroupDef,
  scope: (ctx, eb) => eb.or([eb('r.project_id', '=', ctx.projectId), eb('r.shared', '=', 1)]),
  async expand(db, rows, ctx) {
    const ids = rows.map((r) => r.id);
    const out = new Map<string, Wire>(ids.map((id) => [id, { security_group_rules: [] as Wire[] }]));
    for (let i = 0; i < ids.length; i += 500) {
      const ruleRows = await db.selectFrom('security_group_rules as r').selectAll('r')
        .where('r.security_group_id', 'in', ids.slice(i, i + 500)).orderBy('r.created_at').orderBy('r.id').execute();
      const rendered = await renderRows(db, securityGroupRuleModel, ctx, ruleRows);
      ruleRows.forEach((r, j) => (out.get(r.security_group_id)!.security_group_rules as Wire[]).push(rendered[j]));
    }
    return out;
  },
};

/** Inserts a group row and its rules; the default group also admits its own members. */
async function insertGroup(tx: Tx, projectId: string, name: string, description: string, stateful: boolean, isDefault: boolean): Promise<string> {
  const id = newId();
  const ts = now();
  await tx.insertInto('security_groups').values({
    id, project_id: projectId, name, description, stateful: stateful ? 1 : 0, shared: 0,
    created_at: ts, updated_at: ts, revision_number: 1,
  }).execute();
  const rules = isDefault
    ? [
      { direction: 'ingress', ethertype: 'IPv4', remote_group_id: id },
      { direction: 'egress', ethertype: 'IPv4' },
      { direction: 'ingress', ethertype: 'IPv6', remote_group_id: id },
      { direction: 'egress', ethertype: 'IPv6' },
    ]
    : EGRESS_ANY;
  for (const r of rules) await insertRule(tx, id, projectId, validateRule(r), null);
  return id;
}

/**
 * The project's default group, created on first use. The insert into
 * default_security_groups is keyed by project, so when two requests race only
 * one group survives: the loser's transaction sees the winner's row.
 */
export async function ensureDefaultSecurityGroup(store: Store, tx: Tx, projectId: string): Promise<string> {
  const existing = await tx.selectFrom('default_security_groups').select('security_group_id')
    .where('project_id', '=', projectId).executeTakeFirst();
  if (existing) return existing.security_group_id;
  const id = await insertGroup(tx, projectId, 'default', 'Default security group', true, true);
  const r = await tx.insertInto('default_security_groups').values({ project_id: projectId, security_group_id: id })
    .onConflict((oc) => oc.doNothing()).executeTakeFirst();
  if (Number(r.numInsertedOrUpdatedRows ?? 0n) === 1) {
    await recordResourceChange(tx, store, 'security_groups', 'security_group', id, 'create');
    return id;
  }
  // Somebody else won the race: drop ours, use theirs.
  await tx.deleteFrom('security_groups').where('id', '=', id).execute();
  const winner = await tx.selectFrom('default_security_groups').select('security_group_id')
    .where('project_id', '=', projectId).executeTakeFirstOrThrow();
  return winner.security_group_id;
}

export class SecurityGroupService extends ResourceService {
  constructor(store: Store) {
    super(store, securityGroupModel);
  }

  /** Neutron creates the caller's default group when it first looks at its groups. */
  async list(ctx: AuthContext, query: ListQuery): Promise<Page> {
    await this.ensureDefaultFor(ctx);
    return super.list(ctx, query);
  }

  async ensureDefaultFor(ctx: AuthContext): Promise<void> {
    if (!ctx.projectId || !ctx.canWrite) return;
    await this.store.transaction((tx) => ensureDefaultSecurityGroup(this.store, tx, ctx.projectId));
  }

  protected async createOne(tx: Tx, ctx: AuthContext, body: Body): Promise<string> {
    const projectId = owningProject(ctx, body);
    await ensureDefaultSecurityGroup(this.store, tx, projectId);
    await enforceQuota(tx, 'security_group', projectId);
    return insertGroup(tx, projectId, body.name as string, body.description as string, body.stateful as boolean, false);
  }

  protected async updateOne(tx: Tx, _ctx: AuthContext, row: Row, body: Body): Promise<void> {
    const isDefault = await this.isDefault(tx, row.id);
    if (isDefault && 'name' in body && body.name !== row.name) throw new SecurityGroupCannotUpdateDefault();
    if ('stateful' in body && Boolean(body.stateful) !== Boolean(row.stateful) && await this.inUse(tx, row.id)) {
      throw new SecurityGroupInUse(row.id);
    }
    const set: Record<string, unknown> = {};
    if ('name' in body) set.name = body.name;
    if ('description' in body) set.description = body.description;
    if ('stateful' in body) set.stateful = body.stateful ? 1 : 0;
    await tx.updateTable('security_groups').set({ ...set, ...bumped(row) }).where('id', '=', row.id).execute();
  }

  protected async deleteOne(tx: Tx, ctx: AuthContext, row: Row): Promise<void> {
    if (!ctx.isAdmin && await this.isDefault(tx, row.id)) throw new SecurityGroupCannotRemoveDefault();
    if (await this.inUse(tx, row.id)) throw new SecurityGroupInUse(row.id);
    // Rules elsewhere that name this group as their remote go with it (Neutron's FK cascade).
    const referencing = await tx.selectFrom('security_group_rules').select('security_group_id').distinct()
      .where('remote_group_id', '=', row.id).where('security_group_id', '!=', row.id).execute();
    await tx.deleteFrom('security_group_rules').where('remote_group_id', '=', row.id).execute();
    await tx.deleteFrom('security_group_rules').where('security_group_id', '=', row.id).execute();
    await tx.deleteFrom('default_security_groups').where('security_group_id', '=', row.id).execute();
    await tx.deleteFrom('security_groups').where('id', '=', row.id).execute();
    for (const r of referencing) {
      await recordResourceChange(tx, this.store, 'security_groups', 'security_group', r.security_group_id, 'update');
    }
  }

  private async isDefault(tx: Tx, id: string): Promise<boolean> {
    return Boolean(await tx.selectFrom('default_security_groups').select('project_id').where('security_group_id', '=', id).executeTakeFirst());
  }

  private async inUse(tx: Tx, id: string): Promise<boolean> {
    return Boolean(await tx.selectFrom('port_security_groups').select('port_id').where('security_group_id', '=', id).limit(1).executeTakeFirst());
  }
}
