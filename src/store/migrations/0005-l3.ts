// Routers and floating IPs. A router's interfaces and gateway are ports
// (device_id = router id, device_owner network:router_interface / _gateway),
// so addresses stay in one IPAM; the router row keeps what is not a port.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createTable('routers')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('project_id', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('admin_state_up', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('ACTIVE'))
    .addColumn('distributed', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('ha', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('gw_network_id', 'text', (c) => c.references('networks.id'))
    .addColumn('gw_port_id', 'text')
    .addColumn('enable_snat', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('routes', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('availability_zone_hints', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('revision_number', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.createIndex('routers_project').on('routers').column('project_id').execute();

  await db.schema.createTable('floatingips')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('project_id', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('floating_network_id', 'text', (c) => c.notNull().references('networks.id'))
    .addColumn('floating_ip_address', 'text', (c) => c.notNull())
    // The port that holds the address on the external network (device_owner network:floatingip).
    .addColumn('floating_port_id', 'text', (c) => c.notNull())
    .addColumn('port_id', 'text')
    .addColumn('fixed_ip_address', 'text')
    .addColumn('router_id', 'text', (c) => c.references('routers.id'))
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('DOWN'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('revision_number', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  // One fixed address holds at most one floating IP (NULLs never collide).
  await db.schema.createIndex('floatingips_fixed').on('floatingips').columns(['port_id', 'fixed_ip_address']).unique().execute();
  await db.schema.createIndex('floatingips_router').on('floatingips').column('router_id').execute();
  await db.schema.createIndex('floatingips_project').on('floatingips').column('project_id').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('floatingips').execute();
  await db.schema.dropTable('routers').execute();
}
