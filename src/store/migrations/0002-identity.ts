// Identity (the Keystone v3 subset in src/identity): domains, projects, users,
// roles and their implications, project role assignments, and tokens.
// Tables are prefixed `identity_` so they can never collide with Networking
// tables. Same portable encoding as 0001: booleans 0/1, JSON text, ISO text.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createTable('identity_domains')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();

  // Names are unique per domain, as in Keystone; the unique index is what turns
  // a concurrent duplicate create into a 409 instead of two rows.
  await db.schema.createTable('identity_projects')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('domain_id', 'text', (c) => c.notNull().references('identity_domains.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('tags', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('identity_projects_domain_name').on('identity_projects').columns(['domain_id', 'name']).unique().execute();

  await db.schema.createTable('identity_users')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('domain_id', 'text', (c) => c.notNull().references('identity_domains.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    // scrypt$N$r$p$salt$hash; null for a user that cannot authenticate by password.
    .addColumn('password_hash', 'text')
    .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('default_project_id', 'text')
    // Keystone's free-form user attributes (email, description, ...), JSON text.
    .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('identity_users_domain_name').on('identity_users').columns(['domain_id', 'name']).unique().execute();

  await db.schema.createTable('identity_roles')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('description', 'text')
    .execute();

  // prior ⊃ implied: holding `prior` grants `implied` too (admin ⊃ member ⊃ reader).
  await db.schema.createTable('identity_role_implications')
    .addColumn('prior_role_id', 'text', (c) => c.notNull().references('identity_roles.id').onDelete('cascade'))
    .addColumn('implied_role_id', 'text', (c) => c.notNull().references('identity_roles.id').onDelete('cascade'))
    .addPrimaryKeyConstraint('identity_role_implications_pk', ['prior_role_id', 'implied_role_id'])
    .execute();

  // Direct role grants of a user on a project. Deleting the user, project or
  // role removes its grants.
  await db.schema.createTable('identity_assignments')
    .addColumn('user_id', 'text', (c) => c.notNull().references('identity_users.id').onDelete('cascade'))
    .addColumn('project_id', 'text', (c) => c.notNull().references('identity_projects.id').onDelete('cascade'))
    .addColumn('role_id', 'text', (c) => c.notNull().references('identity_roles.id').onDelete('cascade'))
    .addPrimaryKeyConstraint('identity_assignments_pk', ['user_id', 'project_id', 'role_id'])
    .execute();
  await db.schema.createIndex('identity_assignments_project').on('identity_assignments').column('project_id').execute();
  await db.schema.createIndex('identity_assignments_role').on('identity_assignments').column('role_id').execute();

  // Only a SHA-256 of each token is stored, so a copy of the database does not
  // hold usable credentials. No foreign keys: a token whose user or project is
  // gone simply fails validation, and old rows are pruned by expiry.
  await db.schema.createTable('identity_tokens')
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('project_id', 'text')
    .addColumn('methods', 'text', (c) => c.notNull().defaultTo('["password"]'))
    .addColumn('audit_id', 'text', (c) => c.notNull())
    .addColumn('issued_at', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('revoked', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.createIndex('identity_tokens_user').on('identity_tokens').column('user_id').execute();
  await db.schema.createIndex('identity_tokens_expires').on('identity_tokens').column('expires_at').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ['identity_tokens', 'identity_assignments', 'identity_role_implications', 'identity_roles',
    'identity_users', 'identity_projects', 'identity_domains']) {
    await db.schema.dropTable(t).execute();
  }
}
