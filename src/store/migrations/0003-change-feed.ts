// The change feed agents reconcile from: one row per change to a resource, in a
// monotonically increasing sequence. It lives in the store so it survives
// restarts, and rows are the only contract between API servers and agents.
import { PostgresAdapter, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  const pg = db.getExecutor().adapter instanceof PostgresAdapter;
  await db.schema.createTable('change_feed')
    .addColumn('seq', pg ? 'bigserial' : 'integer', (c) => (pg ? c.primaryKey() : c.primaryKey().autoIncrement()))
    .addColumn('resource_type', 'text', (c) => c.notNull())
    .addColumn('resource_id', 'text', (c) => c.notNull())
    .addColumn('project_id', 'text', (c) => c.notNull())
    .addColumn('op', 'text', (c) => c.notNull())
    .addColumn('revision_number', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    // PostgreSQL only: the writing transaction's id, so readers can stop before
    // any transaction that might still commit a lower seq (see readChanges).
    .addColumn('txid', 'bigint')
    .execute();
  await db.schema.createIndex('change_feed_resource').on('change_feed').columns(['resource_type', 'resource_id']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('change_feed').execute();
}
