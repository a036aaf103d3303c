// Writing and reading the change feed. Every create, update and delete of a
// resource appends a row in the same transaction as the change itself, so the
// feed and the model can never disagree. Agents read the feed from the last
// sequence they applied; since they also reconcile periodically from the full
// model (level-triggered), a missed row costs latency, never correctness.
import { sql } from 'kysely';
import type { Db, Dialect, Tx } from '../store/database.ts';
import { now } from './resource-store.ts';

export type ChangeOp = 'create' | 'update' | 'delete';

export interface Change {
  seq: number;
  resource_type: string;
  resource_id: string;
  project_id: string;
  op: ChangeOp;
  revision_number: number;
  created_at: string;
}

export async function recordChange(
  tx: Tx, dialect: Dialect,
  change: { resource_type: string; resource_id: string; project_id: string; op: ChangeOp; revision_number: number },
): Promise<void> {
  await tx.insertInto('change_feed').values({
    ...change,
    created_at: now(),
    txid: dialect === 'postgres' ? sql<string>`pg_current_xact_id()::text::bigint` as never : null,
  }).execute();
}

/**
 * Changes after `afterSeq`, oldest first. On PostgreSQL a sequence number is
 * taken at insert time but becomes visible at commit, so seq 10 can be visible
 * while seq 9 is still in flight; a reader that moved past 10 would never see 9.
 * Rows are therefore returned only up to the first row written by a transaction
 * that the current snapshot does not yet see as finished (txid >= xmin).
 * SQLite commits serially, so its sequence has no such holes.
 */
export async function readChanges(db: Db, dialect: Dialect, afterSeq: number, limit = 1000): Promise<Change[]> {
  let q = db.selectFrom('change_feed')
    .select(['seq', 'resource_type', 'resource_id', 'project_id', 'op', 'revision_number', 'created_at', 'txid'])
    .where('seq', '>', afterSeq).orderBy('seq').limit(limit);
  if (dialect !== 'postgres') {
    return (await q.execute()).map(({ txid: _t, ...c }) => ({ ...c, seq: Number(c.seq) }));
  }
  q = q.where(sql<boolean>`true`);
  const rows = await sql<Change & { txid: string; xmin: string }>`
    SELECT f.*, pg_snapshot_xmin(pg_current_snapshot())::text AS xmin FROM (${q}) f`.execute(db);
  const out: Change[] = [];
  for (const r of rows.rows) {
    if (BigInt(r.txid) >= BigInt(r.xmin)) break;
    out.push({
      seq: Number(r.seq), resource_type: r.resource_type, resource_id: r.resource_id, project_id: r.project_id,
      op: r.op, revision_number: r.revision_number, created_at: r.created_at,
    });
  }
  return out;
}

/** The newest sequence number (0 when the feed is empty). */
export async function latestSeq(db: Db): Promise<number> {
  const r = await db.selectFrom('change_feed').select((eb) => eb.fn.max('seq').as('m')).executeTakeFirst();
  return Number(r?.m ?? 0);
}
