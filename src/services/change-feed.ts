// Writing and reading the change feed. Every create, update and delete of a
// resource appends a row in the same transaction as the change itself, so the
// feed and the model can never disagree. Agents read the feed from the last
// sequence they applied; since they also reconcile periodically from the full
// model (level-triggered), a missed row costs latency, never correctness.
//
// Ordering: a reader that has seen seq N must never later find a new row below
// N. With a database sequence that can happen (PostgreSQL hands out 10 and 11,
// 11 commits first). So numbers come from one counter row, taken with UPDATE
// ... RETURNING as the last statement before COMMIT: the row lock makes a
// second writer wait until the first has committed, so seq order is commit
// order, and holding the lock only across COMMIT keeps writers parallel until
// then. SQLite transactions are serial anyway; the same code runs there.
import { onBeforeCommit, type Db, type Tx } from '../store/database.ts';
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

type Pending = Omit<Change, 'seq' | 'created_at'>;
const pending = new WeakMap<Tx, Pending[]>();

/** Queues a change; it is written, numbered, just before the transaction commits. */
export function recordChange(tx: Tx, change: Pending): void {
  let list = pending.get(tx);
  if (!list) {
    list = [];
    pending.set(tx, list);
    const rows = list;
    onBeforeCommit(tx, () => flush(tx, rows));
  }
  list.push(change);
}

async function flush(tx: Tx, rows: Pending[]): Promise<void> {
  if (rows.length === 0) return;
  const { seq } = await tx.updateTable('change_feed_counter')
    .set((eb) => ({ seq: eb('seq', '+', rows.length) })).where('id', '=', 1)
    .returning('seq').executeTakeFirstOrThrow();
  const last = Number(seq);
  const at = now();
  await tx.insertInto('change_feed')
    .values(rows.map((r, i) => ({ ...r, seq: last - rows.length + 1 + i, created_at: at }))).execute();
}

/** Changes after `afterSeq`, oldest first. */
export async function readChanges(db: Db, afterSeq: number, limit = 1000): Promise<Change[]> {
  const rows = await db.selectFrom('change_feed').selectAll().where('seq', '>', afterSeq).orderBy('seq').limit(limit).execute();
  return rows.map((r) => ({ ...r, seq: Number(r.seq) }));
}

/** The newest sequence number (0 when the feed is empty). */
export async function latestSeq(db: Db): Promise<number> {
  const r = await db.selectFrom('change_feed_counter').select('seq').where('id', '=', 1).executeTakeFirst();
  return Number(r?.seq ?? 0);
}
