// Domains, projects, users, roles and grants: the identity "directory". Input
// is already parsed (input.ts); this layer enforces existence and uniqueness
// and tells its owner (onChange) about every write, so cached tokens and roles
// never outlive a change made through this process.
import { isUniqueViolation, type Store } from '../../store/database.ts';
import { Conflict, NotFound, Unauthorized, ValidationError } from './errors.ts';
import * as repo from './repository.ts';
import { buildRoleGraph, effectiveRoles, type RoleGraph, type RoleRef } from './roles.ts';
import { generatePassword, hashPassword, newId, verifyPassword } from './secrets.ts';
import type { ProjectCreate, ProjectUpdate, UserCreate, UserUpdate } from './input.ts';
import type { DomainRef, EntityRef, NamedInDomain, RoleName } from './model.ts';

export const DEFAULT_DOMAIN_ID = 'default';
const BOOTSTRAP_ROLES: readonly RoleName[] = ['admin', 'member', 'reader'];
/** prior ⊃ implied, as keystone-manage bootstrap sets them up. */
const BOOTSTRAP_IMPLICATIONS: readonly [RoleName, RoleName][] = [['admin', 'member'], ['member', 'reader']];

const now = () => new Date().toISOString();

export interface BootstrapResult { generatedPassword: string | null; passwordChanged: boolean }

export class Directory {
  private roleGraphCache: { graph: RoleGraph; until: number } | undefined;

  constructor(
    private readonly store: Store,
    /** How long the role graph (roles and implications; tiny, rarely changed) is reused. */
    private readonly roleGraphTtlMs: number,
    private readonly onChange: () => void,
  ) {}

  private get db() {
    return this.store.db;
  }

  /** Call after every write: drops the role graph here and lets the owner drop its token cache. */
  private changed(): void {
    this.roleGraphCache = undefined;
    this.onChange();
  }

  // ---- domains ----

  /** A domain by id or name; either field may carry either, so "Default" and "default" both work. */
  async resolveDomain(ref: DomainRef): Promise<repo.DomainRow | undefined> {
    const byId = ref.id ?? ref.name;
    const byName = ref.name ?? ref.id;
    return (byId !== undefined ? await repo.getDomain(this.db, byId) : undefined)
      ?? (byName !== undefined ? await repo.findDomainByName(this.db, byName) : undefined);
  }

  async getDomain(id: string): Promise<repo.DomainRow> {
    const d = await repo.getDomain(this.db, id);
    if (!d) throw NotFound.of('domain', id);
    return d;
  }

  listDomains(filter: { name?: string; enabled?: boolean }): Promise<repo.DomainRow[]> {
    return repo.listDomains(this.db, filter);
  }

  // ---- projects ----

  async getProject(id: string): Promise<repo.ProjectRow> {
    const p = await repo.getProject(this.db, id);
    if (!p) throw NotFound.of('project', id);
    return p;
  }

  /** A project by id, or by name in a domain given by id or name; undefined when there is none. */
  async resolveProject(ref: EntityRef): Promise<repo.ProjectRow | undefined> {
    if ('id' in ref) return repo.getProject(this.db, ref.id);
    const domain = await this.resolveDomain(ref.domain);
    return domain ? repo.findProjectByName(this.db, domain.id, ref.name) : undefined;
  }

  listProjects(filter: repo.ProjectFilter): Promise<repo.ProjectRow[]> {
    return repo.listProjects(this.db, filter);
  }

  async createProject(input: ProjectCreate, defaultDomainId: string): Promise<repo.ProjectRow> {
    const domain = await this.getDomain(input.domainId ?? defaultDomainId);
    const t = now();
    const row = {
      id: newId(), domain_id: domain.id, name: input.name, description: input.description,
      enabled: input.enabled ? 1 : 0, tags: JSON.stringify(input.tags), created_at: t, updated_at: t,
    };
    await this.unique('project', row.name, domain.id, () => repo.insertProject(this.db, row));
    this.changed();
    return row;
  }

  async updateProject(id: string, input: ProjectUpdate): Promise<repo.ProjectRow> {
    const current = await this.getProject(id);
    const changes = {
      ...(input.name !== undefined && { name: input.name }),
      ...(input.description !== undefined && { description: input.description }),
      ...(input.enabled !== undefined && { enabled: input.enabled ? 1 : 0 }),
      ...(input.tags !== undefined && { tags: JSON.stringify(input.tags) }),
      updated_at: now(),
    };
    await this.unique('project', input.name ?? current.name, current.domain_id, () => repo.updateProject(this.db, id, changes));
    this.changed();
    return this.getProject(id);
  }

  async deleteProject(id: string): Promise<void> {
    if (!(await repo.deleteProject(this.db, id))) throw NotFound.of('project', id);
    this.changed();
  }

  /** Enabled projects on which the user holds at least one role. */
  async projectsOfUser(userId: string, opts: { enabledOnly: boolean }): Promise<repo.ProjectRow[]> {
    const ids = await repo.projectIdsOfUser(this.db, userId);
    return repo.listProjects(this.db, { ids, ...(opts.enabledOnly && { enabled: true }) });
  }

  async userHasRoleOn(userId: string, projectId: string): Promise<boolean> {
    return (await repo.directRoleIds(this.db, userId, projectId)).length > 0;
  }

  // ---- users ----

  async getUser(id: string): Promise<repo.UserRow> {
    const u = await repo.getUser(this.db, id);
    if (!u) throw NotFound.of('user', id);
    return u;
  }

  async resolveUser(ref: EntityRef): Promise<repo.UserRow | undefined> {
    if ('id' in ref) return repo.getUser(this.db, ref.id);
    const domain = await this.resolveDomain(ref.domain);
    return domain ? repo.findUserByName(this.db, domain.id, ref.name) : undefined;
  }

  listUsers(filter: repo.UserFilter): Promise<repo.UserRow[]> {
    return repo.listUsers(this.db, filter);
  }

  async createUser(input: UserCreate, defaultDomainId: string): Promise<repo.UserRow> {
    const domain = await this.getDomain(input.domainId ?? defaultDomainId);
    if (input.defaultProjectId !== null) await this.getProject(input.defaultProjectId);
    const t = now();
    const row = {
      id: newId(), domain_id: domain.id, name: input.name,
      password_hash: input.password === null ? null : await hashPassword(input.password),
      enabled: input.enabled ? 1 : 0, default_project_id: input.defaultProjectId,
      extra: JSON.stringify(input.extra), created_at: t, updated_at: t,
    };
    await this.unique('user', row.name, domain.id, () => repo.insertUser(this.db, row));
    this.changed();
    return row;
  }

  async updateUser(id: string, input: UserUpdate): Promise<repo.UserRow> {
    const current = await this.getUser(id);
    if (input.defaultProjectId) await this.getProject(input.defaultProjectId);
    const extra = { ...JSON.parse(current.extra) as Record<string, string>, ...input.extra };
    for (const [k, v] of Object.entries(extra)) if (v === null) delete extra[k];
    const changes = {
      ...(input.name !== undefined && { name: input.name }),
      ...(input.enabled !== undefined && { enabled: input.enabled ? 1 : 0 }),
      ...(input.defaultProjectId !== undefined && { default_project_id: input.defaultProjectId }),
      ...(input.password !== undefined && { password_hash: input.password === null ? null : await hashPassword(input.password) }),
      extra: JSON.stringify(extra),
      updated_at: now(),
    };
    await this.unique('user', input.name ?? current.name, current.domain_id, () => repo.updateUser(this.db, id, changes));
    // Like Keystone: a new password or a disabled account ends every session.
    if (input.password !== undefined || input.enabled === false) await repo.revokeUserTokens(this.db, id);
    this.changed();
    return this.getUser(id);
  }

  /** Self-service password change; the original password must match (401 otherwise, as Keystone). */
  async changePassword(id: string, originalPassword: string, password: string): Promise<void> {
    const user = await this.getUser(id);
    if (!(await verifyPassword(originalPassword, user.password_hash))) throw new Unauthorized();
    await this.updateUser(id, { password, extra: {} });
  }

  async deleteUser(id: string): Promise<void> {
    if (!(await repo.deleteUser(this.db, id))) throw NotFound.of('user', id);
    await repo.revokeUserTokens(this.db, id);
    this.changed();
  }

  /** The user when the password matches, else undefined; disabled users and domains never authenticate. */
  async checkPassword(ref: EntityRef, password: string): Promise<repo.UserRow | undefined> {
    const user = await this.resolveUser(ref);
    const ok = await verifyPassword(password, user?.password_hash ?? null);
    if (!ok || !user || user.enabled !== 1) return undefined;
    const domain = await repo.getDomain(this.db, user.domain_id);
    return domain?.enabled === 1 ? user : undefined;
  }

  // ---- roles ----

  async getRole(id: string): Promise<repo.RoleRow> {
    const r = await repo.getRole(this.db, id);
    if (!r) throw NotFound.of('role', id);
    return r;
  }

  listRoles(filter: { name?: string }): Promise<repo.RoleRow[]> {
    return repo.listRoles(this.db, filter);
  }

  /** Roles and implications, reused for a short while: validation needs them on every cache miss. */
  async roleGraph(): Promise<RoleGraph> {
    const t = Date.now();
    if (this.roleGraphCache && this.roleGraphCache.until > t) return this.roleGraphCache.graph;
    const [roles, implications] = await Promise.all([repo.listRoles(this.db), repo.listImplications(this.db)]);
    const graph = buildRoleGraph(roles, implications);
    this.roleGraphCache = { graph, until: t + this.roleGraphTtlMs };
    return graph;
  }

  /** Effective roles of the user on the project: direct grants plus what they imply. */
  async effectiveRoles(userId: string, projectId: string): Promise<RoleRef[]> {
    const [direct, graph] = await Promise.all([repo.directRoleIds(this.db, userId, projectId), this.roleGraph()]);
    return effectiveRoles(graph, direct);
  }

  // ---- grants ----

  async grant(projectId: string, userId: string, roleId: string): Promise<void> {
    await Promise.all([this.getProject(projectId), this.getUser(userId), this.getRole(roleId)]);
    await repo.insertAssignment(this.db, { project_id: projectId, user_id: userId, role_id: roleId });
    this.changed();
  }

  async revoke(projectId: string, userId: string, roleId: string): Promise<void> {
    if (!(await repo.deleteAssignment(this.db, { project_id: projectId, user_id: userId, role_id: roleId }))) {
      throw grantNotFound(projectId, userId, roleId);
    }
    this.changed();
  }

  async checkGrant(projectId: string, userId: string, roleId: string): Promise<void> {
    const rows = await repo.listAssignments(this.db, { projectId, userId, roleId });
    if (rows.length === 0) throw grantNotFound(projectId, userId, roleId);
  }

  /** Roles granted directly to the user on the project (GET /v3/projects/{p}/users/{u}/roles). */
  async directRoles(projectId: string, userId: string): Promise<repo.RoleRow[]> {
    await Promise.all([this.getProject(projectId), this.getUser(userId)]);
    const ids = new Set(await repo.directRoleIds(this.db, userId, projectId));
    return (await repo.listRoles(this.db)).filter((r) => ids.has(r.id));
  }

  listAssignments(filter: repo.AssignmentFilter): Promise<repo.AssignmentRow[]> {
    return repo.listAssignments(this.db, filter);
  }

  // ---- bootstrap and tooling ----

  /**
   * Idempotent set-up, like keystone-manage bootstrap: domain default, roles
   * admin ⊃ member ⊃ reader, project admin, user admin with the admin role on
   * it. Concurrent bootstraps (several servers on one PostgreSQL) are safe:
   * every insert ignores or retries a row that appeared meanwhile.
   */
  async bootstrap(adminPassword?: string): Promise<BootstrapResult> {
    await repo.insertDomain(this.db, {
      id: DEFAULT_DOMAIN_ID, name: 'Default', description: 'The default domain', enabled: 1, created_at: now(),
    });
    const roles = new Map<RoleName, string>();
    for (const name of BOOTSTRAP_ROLES) roles.set(name, await this.ensureRole(name));
    for (const [prior, implied] of BOOTSTRAP_IMPLICATIONS) {
      await repo.insertImplication(this.db, roles.get(prior)!, roles.get(implied)!);
    }
    const project = await this.ensureProject('admin');
    const password = adminPassword ?? generatePassword();
    const { row: user, created } = await this.ensureUserRow('admin', password, project.id);
    let result: BootstrapResult = { generatedPassword: null, passwordChanged: false };
    if (created) {
      result = { generatedPassword: password, passwordChanged: true };
    } else if (adminPassword !== undefined && !(await verifyPassword(adminPassword, user.password_hash))) {
      await this.updateUser(user.id, { password: adminPassword, enabled: true, extra: {} });
      result = { generatedPassword: adminPassword, passwordChanged: true };
    }
    await repo.insertAssignment(this.db, { user_id: user.id, project_id: project.id, role_id: roles.get('admin')! });
    this.changed();
    return result;
  }

  /** Project and user in the default domain, created if missing, the password (re)set if it differs, and the role granted. */
  async ensureUser(opts: { project: string; user: string; password: string; role: RoleName }): Promise<{ projectId: string; userId: string }> {
    const role = (await repo.listRoles(this.db, { name: opts.role }))[0];
    if (!role) throw new ValidationError(`Role ${opts.role} does not exist; run bootstrap first.`);
    const project = await this.ensureProject(opts.project);
    const { row: user, created } = await this.ensureUserRow(opts.user, opts.password, project.id);
    if (!created && !(await verifyPassword(opts.password, user.password_hash))) {
      await this.updateUser(user.id, { password: opts.password, extra: {} });
    }
    await repo.insertAssignment(this.db, { user_id: user.id, project_id: project.id, role_id: role.id });
    this.changed();
    return { projectId: project.id, userId: user.id };
  }

  private async ensureRole(name: string): Promise<string> {
    await repo.insertRole(this.db, { id: newId(), name, description: null });
    // Re-read: another process may have inserted it first, with its own id.
    return (await repo.listRoles(this.db, { name }))[0].id;
  }

  private async ensureProject(name: string): Promise<repo.ProjectRow> {
    const found = await repo.findProjectByName(this.db, DEFAULT_DOMAIN_ID, name);
    if (found) return found;
    const t = now();
    const row = { id: newId(), domain_id: DEFAULT_DOMAIN_ID, name, description: '', enabled: 1, tags: '[]', created_at: t, updated_at: t };
    try {
      await repo.insertProject(this.db, row);
      return row;
    } catch (e) {
      if (!isUniqueViolation(e)) throw e;
      return (await repo.findProjectByName(this.db, DEFAULT_DOMAIN_ID, name))!;
    }
  }

  /** The user in the default domain, created with this password if missing; `created` says whether this call made it. */
  private async ensureUserRow(name: string, password: string, defaultProjectId: string): Promise<{ row: repo.UserRow; created: boolean }> {
    const found = await repo.findUserByName(this.db, DEFAULT_DOMAIN_ID, name);
    if (found) return { row: found, created: false };
    const t = now();
    const row = {
      id: newId(), domain_id: DEFAULT_DOMAIN_ID, name, password_hash: await hashPassword(password), enabled: 1,
      default_project_id: defaultProjectId, extra: '{}', created_at: t, updated_at: t,
    };
    try {
      await repo.insertUser(this.db, row);
      return { row, created: true };
    } catch (e) {
      // Another process created it first (concurrent bootstrap): its row, and its password, win.
      if (!isUniqueViolation(e)) throw e;
      return { row: (await repo.findUserByName(this.db, DEFAULT_DOMAIN_ID, name))!, created: false };
    }
  }

  /** Runs a write that may hit the (domain, name) unique index and turns that into Keystone's 409. */
  private async unique(kind: 'project' | 'user', name: string, domainId: string, write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (e) {
      if (isUniqueViolation(e)) throw new Conflict(kind, `Duplicate entry found with name ${name} at domain ID ${domainId}`);
      throw e;
    }
  }
}

function grantNotFound(projectId: string, userId: string, roleId: string): NotFound {
  return new NotFound(`Could not find role assignment with role: ${roleId}, user or group: ${userId}, project, domain, or system: ${projectId}.`);
}

/** Names of a user or project with its domain, for token bodies and include_names listings. */
export function named(row: { id: string; name: string; domain_id: string }, domains: Map<string, repo.DomainRow>): NamedInDomain {
  return { id: row.id, name: row.name, domainId: row.domain_id, domainName: domains.get(row.domain_id)?.name ?? row.domain_id };
}
