// Security groups, their rules, address groups, and which groups a port is in.
import type { Kysely } from 'kysely';

function standard(t: any) {
  return t
    .addColumn('id', 'text', (c: any) => c.primaryKey())
    .addColumn('project_id', 'text', (c: any) => c.notNull())
    .addColumn('created_at', 'text', (c: any) => c.notNull())
    .addColumn('updated_at', 'text', (c: any) => c.notNull())
    .addColumn('revision_number', 'integer', (c: any) => c.notNull().defaultTo(0));
}

export async function up(db: Kysely<any>): Promise<void> {
  await standard(db.schema.createTable('security_groups'))
    .addColumn('name', 'text', (c: any) => c.notNull().defaultTo(''))
    .addColumn('description', 'text', (c: any) => c.notNull().defaultTo(''))
    .addColumn('stateful', 'integer', (c: any) => c.notNull().defaultTo(1))
    .addColumn('shared', 'integer', (c: any) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.createIndex('security_groups_project').on('security_groups').column('project_id').execute();

  // One default group per project, even when two first uses race.
  await db.schema.createTable('default_security_groups')
    .addColumn('project_id', 'text', (c) => c.primaryKey())
    .addColumn('security_group_id', 'text', (c) => c.notNull().references('security_groups.id').onDelete('cascade'))
    .execute();

  await db.schema.createTable('address_groups')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('project_id', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('revision_number', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.createTable('address_group_addresses')
    .addColumn('address_group_id', 'text', (c) => c.notNull().references('address_groups.id').onDelete('cascade'))
    .addColumn('address', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('address_group_addresses_pk', ['address_group_id', 'address'])
    .execute();

  await standard(db.schema.createTable('security_group_rules'))
    .addColumn('security_group_id', 'text', (c: any) => c.notNull().references('security_groups.id').onDelete('cascade'))
    .addColumn('direction', 'text', (c: any) => c.notNull())
    .addColumn('ethertype', 'text', (c: any) => c.notNull())
    .addColumn('protocol', 'text')
    .addColumn('port_range_min', 'integer')
    .addColumn('port_range_max', 'integer')
    .addColumn('remote_ip_prefix', 'text')
    .addColumn('normalized_cidr', 'text')
    .addColumn('remote_group_id', 'text', (c: any) => c.references('security_groups.id'))
    .addColumn('remote_address_group_id', 'text', (c: any) => c.references('address_groups.id'))
    .addColumn('description', 'text')
    // Everything that makes two rules "the same" in Neutron's eyes, in one
    // string: a unique index on it turns concurrent duplicates into one 409
    // without locking the group.
    .addColumn('fingerprint', 'text', (c: any) => c.notNull())
    .execute();
  await db.schema.createIndex('security_group_rules_fingerprint').on('security_group_rules')
    .columns(['security_group_id', 'fingerprint']).unique().execute();
  await db.schema.createIndex('security_group_rules_remote').on('security_group_rules').column('remote_group_id').execute();

  await db.schema.createTable('port_security_groups')
    .addColumn('port_id', 'text', (c) => c.notNull().references('ports.id').onDelete('cascade'))
    .addColumn('security_group_id', 'text', (c) => c.notNull().references('security_groups.id'))
    .addPrimaryKeyConstraint('port_security_groups_pk', ['port_id', 'security_group_id'])
    .execute();
  await db.schema.createIndex('port_security_groups_group').on('port_security_groups').column('security_group_id').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ['port_security_groups', 'security_group_rules', 'address_group_addresses', 'address_groups',
    'default_security_groups', 'security_groups']) {
    await db.schema.dropTable(t).execute();
  }
}
