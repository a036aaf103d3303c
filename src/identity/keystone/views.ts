// Keystone wire format: how domains, projects, users, roles, assignments,
// tokens, the catalog and the version documents look on the wire.
import crypto from 'node:crypto';
import type { DomainRow, ProjectRow, UserRow, RoleRow } from './repository.ts';
import type { Endpoints, TokenInfo, NamedInDomain } from './model.ts';
import type { RoleRef } from './roles.ts';
import { wireTime } from './secrets.ts';

type Json = Record<string, unknown>;

/** Removes a trailing slash so `${base}/v3/...` never doubles it. */
export function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

// ---- versions ----

export function versionDoc(base: string): Json {
  return {
    id: 'v3.14',
    status: 'stable',
    updated: '2020-04-07T00:00:00Z',
    links: [{ rel: 'self', href: `${base}/v3/` }],
    'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.identity-v3+json' }],
  };
}

// ---- entities ----

export function domainView(d: DomainRow, base: string): Json {
  return {
    id: d.id, name: d.name, description: d.description, enabled: d.enabled === 1, tags: [], options: {},
    links: { self: `${base}/v3/domains/${d.id}` },
  };
}

export function projectView(p: ProjectRow, base: string): Json {
  return {
    id: p.id, name: p.name, domain_id: p.domain_id, description: p.description, enabled: p.enabled === 1,
    // Top-level projects have their domain as parent in Keystone.
    parent_id: p.domain_id, is_domain: false, tags: parseJson<string[]>(p.tags, []), options: {},
    links: { self: `${base}/v3/projects/${p.id}` },
  };
}

export function userView(u: UserRow, base: string): Json {
  const view: Json = {
    id: u.id, name: u.name, domain_id: u.domain_id, enabled: u.enabled === 1, password_expires_at: null, options: {},
  };
  if (u.default_project_id !== null) view.default_project_id = u.default_project_id;
  Object.assign(view, parseJson<Record<string, string>>(u.extra, {}));
  view.links = { self: `${base}/v3/users/${u.id}` };
  return view;
}

export function roleView(r: RoleRow, base: string): Json {
  return {
    id: r.id, name: r.name, domain_id: null, description: r.description, options: {},
    links: { self: `${base}/v3/roles/${r.id}` },
  };
}

/** A list body: {"projects": [...], "links": {"self", "previous", "next"}}; lists are never paginated here. */
export function collection(key: string, items: Json[], selfUrl: string): Json {
  return { [key]: items, links: { self: selfUrl, previous: null, next: null } };
}

// ---- role assignments ----

export interface AssignmentNames {
  user?: NamedInDomain;
  project?: NamedInDomain;
  role?: RoleRef;
}

/** One entry of GET /v3/role_assignments; `priorRoleId` marks an entry implied by another role (effective listing). */
export function assignmentView(
  a: { userId: string; projectId: string; roleId: string; priorRoleId?: string },
  base: string,
  names?: AssignmentNames,
): Json {
  const domain = (n: NamedInDomain) => ({ id: n.domainId, name: n.domainName });
  const grantRole = a.priorRoleId ?? a.roleId;
  const links: Json = { assignment: `${base}/v3/projects/${a.projectId}/users/${a.userId}/roles/${grantRole}` };
  if (a.priorRoleId !== undefined) links.prior_role = `${base}/v3/roles/${a.priorRoleId}`;
  return {
    role: names?.role ? { id: a.roleId, name: names.role.name } : { id: a.roleId },
    user: names?.user ? { id: a.userId, name: names.user.name, domain: domain(names.user) } : { id: a.userId },
    scope: { project: names?.project ? { id: a.projectId, name: names.project.name, domain: domain(names.project) } : { id: a.projectId } },
    links,
  };
}

// ---- tokens and catalog ----

/** Stable 32-hex ids for catalog entries, so clients see the same ids on every start. */
function stableId(...parts: string[]): string {
  return crypto.createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 32);
}

function service(type: string, name: string, url: string, region: string): Json {
  return {
    endpoints: ['public', 'internal', 'admin'].map((iface) => ({
      id: stableId('endpoint', type, iface), interface: iface, region_id: region, url, region,
    })),
    id: stableId('service', type),
    type,
    name,
  };
}

export function catalogView(endpoints: Endpoints): Json[] {
  return [
    service('identity', 'keystone', `${trimSlash(endpoints.identityUrl)}/v3/`, endpoints.region),
    service('network', 'neutron', trimSlash(endpoints.networkUrl), endpoints.region),
  ];
}

/** The "token" body of POST/GET /v3/auth/tokens, keys in Keystone's order. */
export function tokenView(t: TokenInfo, endpoints: Endpoints, withCatalog: boolean): Json {
  const body: Json = {
    methods: t.methods,
    user: {
      domain: { id: t.user.domainId, name: t.user.domainName },
      id: t.user.id,
      name: t.user.name,
      password_expires_at: null,
    },
    audit_ids: [t.auditId],
    expires_at: wireTime(t.expiresAt),
    issued_at: wireTime(t.issuedAt),
  };
  if (t.project) {
    body.project = { domain: { id: t.project.domainId, name: t.project.domainName }, id: t.project.id, name: t.project.name };
    body.is_domain = false;
    body.roles = t.roles.map((r) => ({ id: r.id, name: r.name }));
    if (withCatalog) body.catalog = catalogView(endpoints);
  }
  return body;
}

function parseJson<T>(text: string, fallback: T): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}
