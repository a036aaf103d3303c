// Queries of the identity tables. Plain Kysely, portable between SQLite and
// PostgreSQL; every function takes the executor so callers choose whether it
// runs inside a transaction.
import type { Kysely, Selectable, Updateable } from 'kysely';
import type {
  Database, IdentityDomainRow, IdentityProjectRow, IdentityUserRow, IdentityRoleRow, IdentityAssignmentRow,
  IdentityTokenRow,
} from '../../store/schema.ts';

export type Executor = Kysely<Database>;
export type DomainRow = Selectable<IdentityDomainRow>;
export type ProjectRow = Selectable<IdentityProjectRow>;
export type UserRow = Selectable<IdentityUserRow>;
export type RoleRow = Selectable<IdentityRoleRow>;
export type AssignmentRow = Selectable<IdentityAssignmentRow>;

// ---- domains ----

export async function getDomain(db: Executor, id: string): Promise<DomainRow | undefined> {
  return db.selectFrom('identity_domains').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function findDomainByName(db: Executor, name: string): Promise<DomainRow | undefined> {
  return db.selectFrom('identity_domains').selectAll().where('name', '=', name).executeTakeFirst();
}

export async function listDomains(db: Executor, filter: { name?: string; enabled?: boolean } = {}): Promise<DomainRow[]> {
  let q = db.selectFrom('identity_domains').selectAll();
  if (filter.name !== undefined) q = q.where('name', '=', filter.name);
  if (filter.enabled !== undefined) q = q.where('enabled', '=', filter.enabled ? 1 : 0);
  return q.orderBy('name').execute();
}

export async function insertDomain(db: Executor, row: IdentityDomainRow): Promise<void> {
  await db.insertInto('identity_domains').values(row).onConflict((oc) => oc.doNothing()).execute();
}

// ---- projects ----

export interface ProjectFilter { name?: string; domainId?: string; enabled?: boolean; ids?: string[] }

export async function getProject(db: Executor, id: string): Promise<ProjectRow | undefined> {
  return db.selectFrom('identity_projects').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function findProjectByName(db: Executor, domainId: string, name: string): Promise<ProjectRow | undefined> {
  return db.selectFrom('identity_projects').selectAll().where('domain_id', '=', domainId).where('name', '=', name).executeTakeFirst();
}

export async function listProjects(db: Executor, filter: ProjectFilter = {}): Promise<ProjectRow[]> {
  if (filter.ids?.length === 0) return [];
  let q = db.selectFrom('identity_projects').selectAll();
  if (filter.name !== undefined) q = q.where('name', '=', filter.name);
  if (filter.domainId !== undefined) q = q.where('domain_id', '=', filter.domainId);
  if (filter.enabled !== undefined) q = q.where('enabled', '=', filter.enabled ? 1 : 0);
  if (filter.ids !== undefined) q = q.where('id', 'in', filter.ids);
  return q.orderBy('name').orderBy('id').execute();
}

export async function insertProject(db: Executor, row: IdentityProjectRow): Promise<void> {
  await db.insertInto('identity_projects').values(row).execute();
}

export async function updateProject(db: Executor, id: string, changes: Updateable<IdentityProjectRow>): Promise<void> {
  await db.updateTable('identity_projects').set(changes).where('id', '=', id).execute();
}

export async function deleteProject(db: Executor, id: string): Promise<boolean> {
  const r = await db.deleteFrom('identity_projects').where('id', '=', id).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

// ---- users ----

export interface UserFilter { name?: string; domainId?: string; enabled?: boolean }

export async function getUser(db: Executor, id: string): Promise<UserRow | undefined> {
  return db.selectFrom('identity_users').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function findUserByName(db: Executor, domainId: string, name: string): Promise<UserRow | undefined> {
  return db.selectFrom('identity_users').selectAll().where('domain_id', '=', domainId).where('name', '=', name).executeTakeFirst();
}

export async function listUsers(db: Executor, filter: UserFilter = {}): Promise<UserRow[]> {
  let q = db.selectFrom('identity_users').selectAll();
  if (filter.name !== undefined) q = q.where('name', '=', filter.name);
  if (filter.domainId !== undefined) q = q.where('domain_id', '=', filter.domainId);
  if (filter.enabled !== undefined) q = q.where('enabled', '=', filter.enabled ? 1 : 0);
  return q.orderBy('name').orderBy('id').execute();
}

export async function insertUser(db: Executor, row: IdentityUserRow): Promise<void> {
  await db.insertInto('identity_users').values(row).execute();
}

export async function updateUser(db: Executor, id: string, changes: Updateable<IdentityUserRow>): Promise<void> {
  await db.updateTable('identity_users').set(changes).where('id', '=', id).execute();
}

export async function deleteUser(db: Executor, id: string): Promise<boolean> {
  const r = await db.deleteFrom('identity_users').where('id', '=', id).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

// ---- roles ----

export async function getRole(db: Executor, id: string): Promise<RoleRow | undefined> {
  return db.selectFrom('identity_roles').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function listRoles(db: Executor, filter: { name?: string } = {}): Promise<RoleRow[]> {
  let q = db.selectFrom('identity_roles').selectAll();
  if (filter.name !== undefined) q = q.where('name', '=', filter.name);
  return q.orderBy('name').execute();
}

export async function insertRole(db: Executor, row: IdentityRoleRow): Promise<void> {
  await db.insertInto('identity_roles').values(row).onConflict((oc) => oc.doNothing()).execute();
}

export async function listImplications(db: Executor): Promise<{ prior_role_id: string; implied_role_id: string }[]> {
  return db.selectFrom('identity_role_implications').selectAll().execute();
}

export async function insertImplication(db: Executor, priorRoleId: string, impliedRoleId: string): Promise<void> {
  await db.insertInto('identity_role_implications')
    .values({ prior_role_id: priorRoleId, implied_role_id: impliedRoleId })
    .onConflict((oc) => oc.doNothing()).execute();
}

// ---- assignments ----

export interface AssignmentFilter { userId?: string; projectId?: string; roleId?: string }

export async function insertAssignment(db: Executor, row: IdentityAssignmentRow): Promise<void> {
  await db.insertInto('identity_assignments').values(row).onConflict((oc) => oc.doNothing()).execute();
}

export async function deleteAssignment(db: Executor, row: IdentityAssignmentRow): Promise<boolean> {
  const r = await db.deleteFrom('identity_assignments')
    .where('user_id', '=', row.user_id).where('project_id', '=', row.project_id).where('role_id', '=', row.role_id)
    .executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

export async function listAssignments(db: Executor, filter: AssignmentFilter = {}): Promise<AssignmentRow[]> {
  let q = db.selectFrom('identity_assignments').selectAll();
  if (filter.userId !== undefined) q = q.where('user_id', '=', filter.userId);
  if (filter.projectId !== undefined) q = q.where('project_id', '=', filter.projectId);
  if (filter.roleId !== undefined) q = q.where('role_id', '=', filter.roleId);
  return q.orderBy('project_id').orderBy('user_id').orderBy('role_id').execute();
}

/** Ids of the roles granted directly to the user on the project. */
export async function directRoleIds(db: Executor, userId: string, projectId: string): Promise<string[]> {
  const rows = await db.selectFrom('identity_assignments').select('role_id')
    .where('user_id', '=', userId).where('project_id', '=', projectId).execute();
  return rows.map((r) => r.role_id);
}

/** Ids of the projects on which the user holds at least one role. */
export async function projectIdsOfUser(db: Executor, userId: string): Promise<string[]> {
  const rows = await db.selectFrom('identity_assignments').select('project_id').distinct()
    .where('user_id', '=', userId).execute();
  return rows.map((r) => r.project_id);
}

// ---- tokens ----

export async function insertToken(db: Executor, row: IdentityTokenRow): Promise<void> {
  await db.insertInto('identity_tokens').values(row).execute();
}

/** A token with what validation needs about its user, project and their domains, in one query. */
export interface TokenJoinRow {
  token_hash: string;
  methods: string;
  audit_id: string;
  issued_at: string;
  expires_at: string;
  revoked: number;
  user_id: string;
  user_name: string;
  user_enabled: number;
  user_domain_id: string;
  user_domain_name: string;
  user_domain_enabled: number;
  project_id: string | null;
  project_name: string | null;
  project_enabled: number | null;
  project_domain_id: string | null;
  project_domain_name: string | null;
  project_domain_enabled: number | null;
}

export async function getTokenJoined(db: Executor, tokenHash: string): Promise<TokenJoinRow | undefined> {
  return db.selectFrom('identity_tokens as t')
    .innerJoin('identity_users as u', 'u.id', 't.user_id')
    .innerJoin('identity_domains as ud', 'ud.id', 'u.domain_id')
    .leftJoin('identity_projects as p', 'p.id', 't.project_id')
    .leftJoin('identity_domains as pd', 'pd.id', 'p.domain_id')
    .select([
      't.token_hash', 't.methods', 't.audit_id', 't.issued_at', 't.expires_at', 't.revoked', 't.project_id',
      'u.id as user_id', 'u.name as user_name', 'u.enabled as user_enabled',
      'ud.id as user_domain_id', 'ud.name as user_domain_name', 'ud.enabled as user_domain_enabled',
      'p.name as project_name', 'p.enabled as project_enabled',
      'pd.id as project_domain_id', 'pd.name as project_domain_name', 'pd.enabled as project_domain_enabled',
    ])
    .where('t.token_hash', '=', tokenHash)
    .executeTakeFirst();
}

export async function revokeToken(db: Executor, tokenHash: string): Promise<boolean> {
  const r = await db.updateTable('identity_tokens').set({ revoked: 1 })
    .where('token_hash', '=', tokenHash).where('revoked', '=', 0).executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

export async function revokeUserTokens(db: Executor, userId: string): Promise<void> {
  await db.updateTable('identity_tokens').set({ revoked: 1 }).where('user_id', '=', userId).execute();
}

/** Drops tokens that expired before `beforeIso`; they can never validate again. */
export async function pruneTokens(db: Executor, beforeIso: string): Promise<void> {
  await db.deleteFrom('identity_tokens').where('expires_at', '<', beforeIso).execute();
}
