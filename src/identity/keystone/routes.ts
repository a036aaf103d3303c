// The Identity API routes: versions, auth/tokens, projects, users, roles,
// domains, grants and role assignments. Handlers parse (input.ts), enforce
// policy (access.ts), act (directory.ts / tokens.ts) and render (views.ts).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { enforce } from './access.ts';
import { named, type Directory } from './directory.ts';
import { NotFound, ValidationError } from './errors.ts';
import {
  parseAuthRequest, parsePasswordChange, parseProjectCreate, parseProjectUpdate, parseUserCreate, parseUserUpdate,
  queryBoolean, queryFlag,
} from './input.ts';
import { baseUrl, caller, header, queryValue, selfUrl, type RouteContext } from './http.ts';
import type { DomainRow } from './repository.ts';
import { impliedOnly } from './roles.ts';
import {
  assignmentView, catalogView, collection, domainView, projectView, roleView, tokenView, userView, versionDoc,
} from './views.ts';

export interface Routes extends RouteContext {
  directory: Directory;
}

type Id = { Params: { id: string } };
type Grant = { Params: { projectId: string; userId: string; roleId: string } };

const noContent = (reply: FastifyReply) => reply.code(204).send();

export function registerVersionRoutes(app: FastifyInstance, r: Routes): void {
  app.get('/', async (req, reply) => {
    const base = baseUrl(r, req);
    reply.code(300).header('location', `${base}/v3/`);
    return { versions: { values: [versionDoc(base)] } };
  });
  app.get('/v3', async (req) => ({ version: versionDoc(baseUrl(r, req)) }));
}

export function registerAuthRoutes(app: FastifyInstance, r: Routes): void {
  app.post('/v3/auth/tokens', async (req, reply) => {
    const { token, info } = await r.tokens.authenticate(parseAuthRequest(req.body));
    reply.code(201).header('x-subject-token', token);
    return { token: tokenView(info, r.endpoints, !queryFlag(queryValue(req, 'nocatalog'))) };
  });

  /** The token named by X-Subject-Token, checked against the caller's right to see it. */
  async function subjectToken(req: FastifyRequest, action: 'identity:validate_token' | 'identity:revoke_token') {
    const me = await caller(r, req);
    const subject = header(req, 'x-subject-token');
    if (!subject) throw new ValidationError('X-Subject-Token header is required.');
    const info = await r.tokens.resolve(subject);
    // The subject is not echoed: messages may be logged, tokens must not be.
    if (!info) throw new NotFound('Could not find token.');
    enforce(action, me, { userId: info.user.id });
    return { subject, info };
  }

  // GET validates; fastify derives HEAD (200/404, no body) from it.
  app.get('/v3/auth/tokens', async (req, reply) => {
    const { subject, info } = await subjectToken(req, 'identity:validate_token');
    reply.header('x-subject-token', subject);
    return { token: tokenView(info, r.endpoints, !queryFlag(queryValue(req, 'nocatalog'))) };
  });

  app.delete('/v3/auth/tokens', async (req, reply) => {
    const { subject } = await subjectToken(req, 'identity:revoke_token');
    await r.tokens.revoke(subject);
    return noContent(reply);
  });

  app.get('/v3/auth/projects', async (req) => {
    const me = await caller(r, req);
    const projects = await r.directory.projectsOfUser(me.user.id, { enabledOnly: true });
    return collection('projects', projects.map((p) => projectView(p, baseUrl(r, req))), selfUrl(r, req));
  });

  // Only project grants exist here, so no token user has domains to choose from.
  app.get('/v3/auth/domains', async (req) => {
    await caller(r, req);
    return collection('domains', [], selfUrl(r, req));
  });

  app.get('/v3/auth/catalog', async (req) => {
    const me = await caller(r, req);
    return { catalog: me.project ? catalogView(r.endpoints) : [], links: { self: selfUrl(r, req), previous: null, next: null } };
  });
}

export function registerProjectRoutes(app: FastifyInstance, r: Routes): void {
  const d = r.directory;

  app.get('/v3/projects', async (req) => {
    enforce('identity:list_projects', await caller(r, req));
    const isDomain = queryBoolean(queryValue(req, 'is_domain'));
    const parent = queryValue(req, 'parent_id');
    // Projects acting as domains do not exist here; a parent can only be a domain.
    const rows = isDomain ? [] : await d.listProjects({
      name: queryValue(req, 'name'),
      domainId: queryValue(req, 'domain_id') ?? parent,
      enabled: queryBoolean(queryValue(req, 'enabled')),
    });
    return collection('projects', rows.map((p) => projectView(p, baseUrl(r, req))), selfUrl(r, req));
  });

  app.post('/v3/projects', async (req, reply) => {
    const me = await caller(r, req);
    enforce('identity:create_project', me);
    const row = await d.createProject(parseProjectCreate(req.body), me.project?.domainId ?? me.user.domainId);
    reply.code(201);
    return { project: projectView(row, baseUrl(r, req)) };
  });

  app.get<Id>('/v3/projects/:id', async (req) => {
    const me = await caller(r, req);
    const row = await d.getProject(req.params.id);
    enforce('identity:get_project', me, { callerHasRoleOnProject: await d.userHasRoleOn(me.user.id, row.id) });
    return { project: projectView(row, baseUrl(r, req)) };
  });

  app.patch<Id>('/v3/projects/:id', async (req) => {
    enforce('identity:update_project', await caller(r, req));
    const current = await d.getProject(req.params.id);
    const row = await d.updateProject(current.id, parseProjectUpdate(req.body, { domainId: current.domain_id }));
    return { project: projectView(row, baseUrl(r, req)) };
  });

  app.delete<Id>('/v3/projects/:id', async (req, reply) => {
    enforce('identity:delete_project', await caller(r, req));
    await d.deleteProject(req.params.id);
    return noContent(reply);
  });
}

export function registerUserRoutes(app: FastifyInstance, r: Routes): void {
  const d = r.directory;

  app.get('/v3/users', async (req) => {
    enforce('identity:list_users', await caller(r, req));
    const rows = await d.listUsers({
      name: queryValue(req, 'name'),
      domainId: queryValue(req, 'domain_id'),
      enabled: queryBoolean(queryValue(req, 'enabled')),
    });
    return collection('users', rows.map((u) => userView(u, baseUrl(r, req))), selfUrl(r, req));
  });

  app.post('/v3/users', async (req, reply) => {
    const me = await caller(r, req);
    enforce('identity:create_user', me);
    const row = await d.createUser(parseUserCreate(req.body), me.project?.domainId ?? me.user.domainId);
    reply.code(201);
    return { user: userView(row, baseUrl(r, req)) };
  });

  app.get<Id>('/v3/users/:id', async (req) => {
    enforce('identity:get_user', await caller(r, req), { userId: req.params.id });
    return { user: userView(await d.getUser(req.params.id), baseUrl(r, req)) };
  });

  app.patch<Id>('/v3/users/:id', async (req) => {
    enforce('identity:update_user', await caller(r, req));
    const current = await d.getUser(req.params.id);
    const row = await d.updateUser(current.id, parseUserUpdate(req.body, { domainId: current.domain_id }));
    return { user: userView(row, baseUrl(r, req)) };
  });

  app.delete<Id>('/v3/users/:id', async (req, reply) => {
    enforce('identity:delete_user', await caller(r, req));
    await d.deleteUser(req.params.id);
    return noContent(reply);
  });

  app.post<Id>('/v3/users/:id/password', async (req, reply) => {
    enforce('identity:change_password', await caller(r, req), { userId: req.params.id });
    const { password, originalPassword } = parsePasswordChange(req.body);
    await d.changePassword(req.params.id, originalPassword, password);
    return noContent(reply);
  });

  app.get<Id>('/v3/users/:id/projects', async (req) => {
    enforce('identity:list_user_projects', await caller(r, req), { userId: req.params.id });
    await d.getUser(req.params.id);
    const rows = await d.projectsOfUser(req.params.id, { enabledOnly: false });
    return collection('projects', rows.map((p) => projectView(p, baseUrl(r, req))), selfUrl(r, req));
  });
}

export function registerRoleAndDomainRoutes(app: FastifyInstance, r: Routes): void {
  const d = r.directory;

  app.get('/v3/roles', async (req) => {
    enforce('identity:list_roles', await caller(r, req));
    const rows = await d.listRoles({ name: queryValue(req, 'name') });
    return collection('roles', rows.map((x) => roleView(x, baseUrl(r, req))), selfUrl(r, req));
  });

  app.get<Id>('/v3/roles/:id', async (req) => {
    enforce('identity:get_role', await caller(r, req));
    return { role: roleView(await d.getRole(req.params.id), baseUrl(r, req)) };
  });

  app.get('/v3/domains', async (req) => {
    enforce('identity:list_domains', await caller(r, req));
    const rows = await d.listDomains({ name: queryValue(req, 'name'), enabled: queryBoolean(queryValue(req, 'enabled')) });
    return collection('domains', rows.map((x) => domainView(x, baseUrl(r, req))), selfUrl(r, req));
  });

  app.get<Id>('/v3/domains/:id', async (req) => {
    const me = await caller(r, req);
    const row = await d.getDomain(req.params.id);
    enforce('identity:get_domain', me, { domainId: row.id });
    return { domain: domainView(row, baseUrl(r, req)) };
  });
}

export function registerGrantRoutes(app: FastifyInstance, r: Routes): void {
  const d = r.directory;
  const grantPath = '/v3/projects/:projectId/users/:userId/roles/:roleId';

  app.get<{ Params: { projectId: string; userId: string } }>('/v3/projects/:projectId/users/:userId/roles', async (req) => {
    enforce('identity:list_grants', await caller(r, req), { userId: req.params.userId });
    const rows = await d.directRoles(req.params.projectId, req.params.userId);
    return collection('roles', rows.map((x) => roleView(x, baseUrl(r, req))), selfUrl(r, req));
  });

  app.put<Grant>(grantPath, async (req, reply) => {
    enforce('identity:create_grant', await caller(r, req));
    await d.grant(req.params.projectId, req.params.userId, req.params.roleId);
    return noContent(reply);
  });

  // Keystone answers a grant check with 204 on GET and HEAD (derived from GET).
  app.get<Grant>(grantPath, async (req, reply) => {
    enforce('identity:check_grant', await caller(r, req), { userId: req.params.userId });
    await d.checkGrant(req.params.projectId, req.params.userId, req.params.roleId);
    return noContent(reply);
  });

  app.delete<Grant>(grantPath, async (req, reply) => {
    enforce('identity:revoke_grant', await caller(r, req));
    await d.revoke(req.params.projectId, req.params.userId, req.params.roleId);
    return noContent(reply);
  });

  app.get('/v3/role_assignments', async (req) => {
    const userId = queryValue(req, 'user.id');
    const projectId = queryValue(req, 'scope.project.id');
    const roleId = queryValue(req, 'role.id');
    const me = await caller(r, req);
    // A non-admin may list only its own assignments, and must say so with user.id.
    enforce('identity:list_role_assignments', me, { userId });
    const base = baseUrl(r, req);
    // Groups, domain and system grants do not exist here: such filters match nothing.
    const unsupported = ['group.id', 'scope.domain.id', 'scope.system', 'scope.OS-INHERIT:inherited_to']
      .some((k) => queryValue(req, k) !== undefined);
    const rows = unsupported ? [] : await d.listAssignments({ userId, projectId });
    const graph = await d.roleGraph();
    const entries = expandAssignments(rows, queryFlag(queryValue(req, 'effective')) ? (id) => impliedOnly(graph, id).map((x) => x.id) : () => [])
      .filter((a) => roleId === undefined || a.roleId === roleId);
    if (!queryFlag(queryValue(req, 'include_names'))) {
      return collection('role_assignments', entries.map((a) => assignmentView(a, base)), selfUrl(r, req));
    }
    const domains = new Map<string, DomainRow>((await d.listDomains({})).map((x) => [x.id, x]));
    const users = new Map(await Promise.all([...new Set(entries.map((a) => a.userId))].map(async (id) => [id, named(await d.getUser(id), domains)] as const)));
    const projects = new Map(await Promise.all([...new Set(entries.map((a) => a.projectId))].map(async (id) => [id, named(await d.getProject(id), domains)] as const)));
    const views = entries.map((a) => assignmentView(a, base, {
      user: users.get(a.userId), project: projects.get(a.projectId), role: graph.byId.get(a.roleId),
    }));
    return collection('role_assignments', views, selfUrl(r, req));
  });
}

interface AssignmentEntry { userId: string; projectId: string; roleId: string; priorRoleId?: string }

/** Direct grants plus, for an effective listing, one entry per implied role (deduplicated, direct wins). */
export function expandAssignments(
  rows: readonly { user_id: string; project_id: string; role_id: string }[],
  implied: (roleId: string) => string[],
): AssignmentEntry[] {
  const out = new Map<string, AssignmentEntry>();
  const key = (a: AssignmentEntry) => `${a.userId}\0${a.projectId}\0${a.roleId}`;
  for (const row of rows) {
    const direct = { userId: row.user_id, projectId: row.project_id, roleId: row.role_id };
    out.set(key(direct), direct);
  }
  for (const row of rows) {
    for (const roleId of implied(row.role_id)) {
      const e = { userId: row.user_id, projectId: row.project_id, roleId, priorRoleId: row.role_id };
      if (!out.has(key(e))) out.set(key(e), e);
    }
  }
  return [...out.values()];
}
