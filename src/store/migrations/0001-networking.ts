// Core networking tables: networks, segments, subnets, ports, IP allocations,
// tags and quotas. Portable SQL only (SQLite and PostgreSQL): booleans are
// integer 0/1, lists/dicts are JSON text, timestamps ISO-8601 text.
import type { Kysely } from 'kysely';

// Columns every Neutron resource carries (neutron's "standard attributes").
function standard<T extends { addColumn: Function }>(t: T): T {
  return (t as any)
    .addColumn('id', 'text', (c: any) => c.primaryKey())
    .addColumn('project_id', 'text', (c: any) => c.notNull())
    .addColumn('name', 'text', (c: any) => c.notNull().defaultTo(''))
    .addColumn('description', 'text', (c: any) => c.notNull().defaultTo(''))
    .addColumn('created_at', 'text', (c: any) => c.notNull())
    .addColumn('updated_at', 'text', (c: any) => c.notNull())
    .addColumn('revision_number', 'integer', (c: any) => c.notNull().defaultTo(0));
}

export async function up(db: Kysely<any>): Promise<void> {
  await standard(db.schema.createTable('networks'))
    .addColumn('admin_state_up', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('ACTIVE'))
    .addColumn('shared', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('router_external', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('is_default', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('mtu', 'integer', (c) => c.notNull())
    .addColumn('port_security_enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('network_type', 'text', (c) => c.notNull())
    .addColumn('physical_network', 'text')
    .addColumn('segmentation_id', 'integer')
    .addColumn('availability_zone_hints', 'text', (c) => c.notNull().defaultTo('[]'))
    .execute();
  await db.schema.createIndex('networks_project').on('networks').column('project_id').execute();

  // One row per allocated segment; the primary key is what makes two networks
  // unable to share a VLAN or VNI, even under concurrent creates.
  await db.schema.createTable('segment_allocations')
    .addColumn('network_type', 'text', (c) => c.notNull())
    .addColumn('physical_network', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('segmentation_id', 'integer', (c) => c.notNull())
    .addColumn('network_id', 'text', (c) => c.notNull().references('networks.id').onDelete('cascade'))
    .addPrimaryKeyConstraint('segment_allocations_pk', ['network_type', 'physical_network', 'segmentation_id'])
    .execute();
  // A flat network is allocated as segmentation_id 0 on its physical network, so
  // the same key also allows one flat network per physical network.
  await db.schema.createIndex('segment_allocations_network').on('segment_allocations').column('network_id').execute();

  await standard(db.schema.createTable('subnets'))
    .addColumn('network_id', 'text', (c) => c.notNull().references('networks.id'))
    .addColumn('ip_version', 'integer', (c) => c.notNull())
    .addColumn('cidr', 'text', (c) => c.notNull())
    .addColumn('gateway_ip', 'text')
    .addColumn('enable_dhcp', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('ipv6_ra_mode', 'text')
    .addColumn('ipv6_address_mode', 'text')
    .addColumn('allocation_pools', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('dns_nameservers', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('host_routes', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('service_types', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('subnetpool_id', 'text')
    .execute();
  await db.schema.createIndex('subnets_network').on('subnets').column('network_id').execute();
  await db.schema.createIndex('subnets_project').on('subnets').column('project_id').execute();

  await standard(db.schema.createTable('ports'))
    .addColumn('network_id', 'text', (c) => c.notNull().references('networks.id'))
    .addColumn('mac_address', 'text', (c) => c.notNull())
    .addColumn('admin_state_up', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('DOWN'))
    .addColumn('device_id', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('device_owner', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('port_security_enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('allowed_address_pairs', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('extra_dhcp_opts', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('binding_host_id', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('binding_vnic_type', 'text', (c) => c.notNull().defaultTo('normal'))
    .addColumn('binding_vif_type', 'text', (c) => c.notNull().defaultTo('unbound'))
    .addColumn('binding_vif_details', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('binding_profile', 'text', (c) => c.notNull().defaultTo('{}'))
    .execute();
  await db.schema.createIndex('ports_network_mac').on('ports').columns(['network_id', 'mac_address']).unique().execute();
  await db.schema.createIndex('ports_project').on('ports').column('project_id').execute();
  await db.schema.createIndex('ports_device').on('ports').column('device_id').execute();

  // The primary key (subnet, address) is the final guard against handing one
  // address to two ports, whatever the allocator did.
  await db.schema.createTable('ip_allocations')
    .addColumn('subnet_id', 'text', (c) => c.notNull().references('subnets.id'))
    .addColumn('ip_address', 'text', (c) => c.notNull())
    .addColumn('port_id', 'text', (c) => c.notNull().references('ports.id').onDelete('cascade'))
    .addColumn('network_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('ip_allocations_pk', ['subnet_id', 'ip_address'])
    .execute();
  await db.schema.createIndex('ip_allocations_port').on('ip_allocations').column('port_id').execute();

  await db.schema.createTable('tags')
    .addColumn('resource_type', 'text', (c) => c.notNull())
    .addColumn('resource_id', 'text', (c) => c.notNull())
    .addColumn('tag', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('tags_pk', ['resource_id', 'tag'])
    .execute();
  await db.schema.createIndex('tags_tag').on('tags').columns(['tag', 'resource_type']).execute();

  await db.schema.createTable('quotas')
    .addColumn('project_id', 'text', (c) => c.notNull())
    .addColumn('resource', 'text', (c) => c.notNull())
    .addColumn('hard_limit', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('quotas_pk', ['project_id', 'resource'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ['quotas', 'tags', 'ip_allocations', 'ports', 'subnets', 'segment_allocations', 'networks']) {
    await db.schema.dropTable(t).execute();
  }
}
