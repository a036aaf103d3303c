// The change feed agents reconcile from: one row per change to a resource, in a
// sequence that increases in commit order. It lives in the store so it survives
// restarts, and rows are the only contract between API servers and agents.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createTable('change_feed')
    .addColumn('seq', 'bigint', (c) => c.primaryKey())
    .addColumn('resource_type', 'text', (c) => c.notNull())
    .addColumn('resource_id', 'text', (c) => c.notNull())
    .addColumn('project_id', 'text', (c) => c.notNull())
    .addColumn('op', 'text', (c) => c.notNull())
    .addColumn('revision_number', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('change_feed_resource').on('change_feed').columns(['resource_type', 'resource_id']).execute();
  // A single counter row: taking it (UPDATE ... RETURNING) right before COMMIT
  // makes sequence numbers follow commit order (see services/change-feed.ts).
  await db.schema.createTable('change_feed_counter')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .execute();
  await db.insertInto('change_feed_counter').values({ id: 1, seq: 0 }).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('change_feed_counter').execute();
  await db.schema.dropTable('change_feed').execute();
}
