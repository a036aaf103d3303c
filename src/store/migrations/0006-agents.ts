// Agents (Neutron's agent extension): one row per host running `nucleon
// agent`, upserted by host when the agent starts and refreshed by its
// heartbeat. `alive_until` is the heartbeat plus twice the agent's report
// interval, written by the agent itself, so "alive" is a plain comparison
// with the clock (in SQL too) whatever interval each agent runs with.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createTable('agents')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('agent_type', 'text', (c) => c.notNull())
    .addColumn('binary', 'text', (c) => c.notNull())
    .addColumn('topic', 'text', (c) => c.notNull())
    .addColumn('host', 'text', (c) => c.notNull())
    .addColumn('admin_state_up', 'integer', (c) => c.notNull().defaultTo(1))
    // Neutron's agent times: 'YYYY-MM-DD HH:MM:SS' in UTC, which also sorts as text.
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('started_at', 'text', (c) => c.notNull())
    .addColumn('heartbeat_timestamp', 'text', (c) => c.notNull())
    .addColumn('alive_until', 'text', (c) => c.notNull())
    .addColumn('configurations', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('availability_zone', 'text')
    .addColumn('description', 'text')
    .addColumn('resources_synced', 'integer')
    .execute();
  // Neutron's uniq_agents0agent_type0host: re-registration finds the same row.
  await db.schema.createIndex('agents_type_host').on('agents').columns(['agent_type', 'host']).unique().execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('agents').execute();
}
