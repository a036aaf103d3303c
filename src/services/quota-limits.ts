// Quota enforcement shared by every resource service: a create counts what the
// project already has, inside the same transaction, and refuses with Neutron's
// OverQuota (409) past the limit. -1 means unlimited.
import { sql } from 'kysely';
import { OverQuota } from '../errors.ts';
import { lockKey, type Db, type Tx } from '../store/database.ts';

/** Neutron's defaults (neutron.conf [quotas]). */
export const QUOTA_DEFAULTS: Record<string, number> = {
  network: 100,
  subnet: 100,
  subnetpool: -1,
  port: 500,
  router: 10,
  floatingip: 50,
  rbac_policy: 10,
  security_group: 10,
  security_group_rule: 100,
};

/** Which table holds each counted resource; later resources register theirs. */
const COUNTED: Record<string, string> = { network: 'networks', subnet: 'subnets', port: 'ports' };

export function registerQuotaResource(resource: string, table: string, defaultLimit: number): void {
  COUNTED[resource] = table;
  if (!(resource in QUOTA_DEFAULTS)) QUOTA_DEFAULTS[resource] = defaultLimit;
}

export function quotaResources(): string[] {
  return Object.keys(QUOTA_DEFAULTS);
}

/** The project's limits: stored overrides over the defaults. */
export async function quotaLimits(db: Db | Tx, projectId: string): Promise<Record<string, number>> {
  const rows = await db.selectFrom('quotas').selectAll().where('project_id', '=', projectId).execute();
  const out = { ...QUOTA_DEFAULTS };
  for (const r of rows) out[r.resource] = r.hard_limit;
  return out;
}

export async function countUsage(db: Db | Tx, resource: string, projectId: string): Promise<number> {
  const table = COUNTED[resource];
  if (!table) return 0;
  const r = await sql<{ n: number | string }>`SELECT count(*) AS n FROM ${sql.table(table)} WHERE project_id = ${projectId}`.execute(db);
  return Number(r.rows[0].n);
}

/** Throws OverQuota if adding `adding` more of resource would pass the project's limit. */
export async function enforceQuota(tx: Tx, resource: string, projectId: string, adding = 1): Promise<void> {
  const row = await tx.selectFrom('quotas').select('hard_limit')
    .where('project_id', '=', projectId).where('resource', '=', resource).executeTakeFirst();
  const limit = row?.hard_limit ?? QUOTA_DEFAULTS[resource] ?? -1;
  if (limit < 0) return;
  // Under READ COMMITTED, concurrent creates would all count the same usage and
  // all pass; serialize this project's creates of this resource instead.
  await lockKey(tx, `quota:${projectId}:${resource}`);
  const used = await countUsage(tx, resource, projectId);
  if (used + adding > limit) throw new OverQuota(resource);
}
