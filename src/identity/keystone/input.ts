// Parsing of request bodies and query strings into typed inputs. Anything
// malformed becomes a ValidationError (400) naming the field, never a 500.
import { ValidationError, Unauthorized } from './errors.ts';
import type { DomainRef, EntityRef } from './model.ts';

export type JsonObject = Record<string, unknown>;

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function invalid(field: string, reason: string): ValidationError {
  return new ValidationError(`Invalid input for field '${field}': ${reason}`);
}

/** The JSON type name of a value, as Keystone's schema errors print it. */
function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

export function requireObject(parent: unknown, key: string, field = key): JsonObject {
  const v = isObject(parent) ? parent[key] : undefined;
  if (v === undefined) throw new ValidationError(`'${key}' is a required property`);
  if (!isObject(v)) throw invalid(field, `${typeName(v)} is not of type 'object'`);
  return v;
}

interface StringRule { min?: number; max?: number }

export function optString(obj: JsonObject, key: string, rule: StringRule = {}, field = key): string | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw invalid(field, `${typeName(v)} is not of type 'string'`);
  const { min = 0, max = 255 } = rule;
  if (v.length < min) throw invalid(field, `'${v}' is too short`);
  if (v.length > max) throw invalid(field, 'value is too long');
  return v;
}

export function requireString(obj: JsonObject, key: string, rule: StringRule = {}, field = key): string {
  const v = optString(obj, key, rule, field);
  if (v === undefined) throw new ValidationError(`'${key}' is a required property`);
  return v;
}

/** A string that may also be null (description, email, default_project_id). */
export function optNullableString(obj: JsonObject, key: string, rule: StringRule = {}): string | null | undefined {
  return obj[key] === null ? null : optString(obj, key, rule);
}

export function optBoolean(obj: JsonObject, key: string): boolean | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw invalid(key, `${typeName(v)} is not of type 'boolean'`);
  return v;
}

export function optStringList(obj: JsonObject, key: string, rule: StringRule & { maxItems?: number } = {}): string[] | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw invalid(key, `${typeName(v)} is not of type 'array'`);
  if (v.length > (rule.maxItems ?? 80)) throw invalid(key, 'too many items');
  return v.map((item, i) => {
    if (typeof item !== 'string') throw invalid(`${key}[${i}]`, `${typeName(item)} is not of type 'string'`);
    if (item.length < (rule.min ?? 1) || item.length > (rule.max ?? 255)) throw invalid(`${key}[${i}]`, 'bad length');
    return item;
  });
}

/** Keystone's query booleans: absent → undefined; 0/false/no/off → false; anything else → true. */
export function queryBoolean(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  return !['0', 'false', 'f', 'n', 'no', 'off'].includes(v.toLowerCase());
}

/** Query flags such as ?nocatalog and ?include_names: present and not false. */
export function queryFlag(v: string | undefined): boolean {
  return queryBoolean(v) ?? false;
}

// ---- project and user bodies ----

// Keystone's own limits: project names up to 64 characters, user names 255.
const PROJECT_NAME = { min: 1, max: 64 };
const USER_NAME = { min: 1, max: 255 };
const PASSWORD = { min: 0, max: 4096 };

export interface ProjectCreate {
  name: string;
  domainId?: string;
  description: string;
  enabled: boolean;
  tags: string[];
}

export interface ProjectUpdate {
  name?: string;
  description?: string;
  enabled?: boolean;
  tags?: string[];
}

/**
 * Hierarchical projects and projects acting as domains are not supported: a
 * project's parent can only be its domain. Returns the domain the body names
 * (domain_id, or parent_id standing for it), if any.
 */
function projectDomain(p: JsonObject, currentDomainId?: string): string | undefined {
  if (p.is_domain === true) throw invalid('is_domain', 'projects acting as domains are not supported');
  const domainId = optString(p, 'domain_id', { min: 1, max: 64 });
  const parentId = p.parent_id === null ? undefined : optString(p, 'parent_id', { min: 1, max: 64 });
  const expected = domainId ?? currentDomainId;
  if (parentId !== undefined && expected !== undefined && parentId !== expected) {
    throw invalid('parent_id', 'only top-level projects (parent_id = domain_id) are supported');
  }
  return domainId ?? parentId;
}

export function parseProjectCreate(body: unknown): ProjectCreate {
  const p = requireObject(body, 'project');
  return {
    name: requireString(p, 'name', PROJECT_NAME),
    domainId: projectDomain(p),
    description: optNullableString(p, 'description', { max: 65535 }) ?? '',
    enabled: optBoolean(p, 'enabled') ?? true,
    tags: optStringList(p, 'tags') ?? [],
  };
}

export function parseProjectUpdate(body: unknown, current: { domainId: string }): ProjectUpdate {
  const p = requireObject(body, 'project');
  if (p.domain_id !== undefined && p.domain_id !== current.domainId) throw invalid('domain_id', 'a project cannot move to another domain');
  projectDomain(p, current.domainId);
  const description = optNullableString(p, 'description', { max: 65535 });
  return {
    name: optString(p, 'name', PROJECT_NAME),
    description: description === null ? '' : description,
    enabled: optBoolean(p, 'enabled'),
    tags: optStringList(p, 'tags'),
  };
}

export interface UserCreate {
  name: string;
  domainId?: string;
  password: string | null;
  enabled: boolean;
  defaultProjectId: string | null;
  /** email, description: kept as Keystone's free-form attributes. */
  extra: Record<string, string>;
}

export interface UserUpdate {
  name?: string;
  password?: string | null;
  enabled?: boolean;
  defaultProjectId?: string | null;
  extra: Record<string, string | null>;
}

function parseExtra(u: JsonObject): Record<string, string | null> {
  const extra: Record<string, string | null> = {};
  for (const key of ['email', 'description']) {
    const v = optNullableString(u, key, { max: 65535 });
    if (v !== undefined) extra[key] = v;
  }
  return extra;
}

export function parseUserCreate(body: unknown): UserCreate {
  const u = requireObject(body, 'user');
  const extra: Record<string, string> = {};
  for (const [k, v] of Object.entries(parseExtra(u))) if (v !== null) extra[k] = v;
  return {
    name: requireString(u, 'name', USER_NAME),
    domainId: optString(u, 'domain_id', { min: 1, max: 64 }),
    password: optNullableString(u, 'password', PASSWORD) ?? null,
    enabled: optBoolean(u, 'enabled') ?? true,
    defaultProjectId: optNullableString(u, 'default_project_id', { min: 1, max: 64 }) ?? null,
    extra,
  };
}

export function parseUserUpdate(body: unknown, current: { domainId: string }): UserUpdate {
  const u = requireObject(body, 'user');
  if (u.domain_id !== undefined && u.domain_id !== current.domainId) throw invalid('domain_id', 'a user cannot move to another domain');
  return {
    name: optString(u, 'name', USER_NAME),
    password: optNullableString(u, 'password', PASSWORD),
    enabled: optBoolean(u, 'enabled'),
    defaultProjectId: optNullableString(u, 'default_project_id', { min: 1, max: 64 }),
    extra: parseExtra(u),
  };
}

/** POST /v3/users/{id}/password: {"user": {"password", "original_password"}}. */
export function parsePasswordChange(body: unknown): { password: string; originalPassword: string } {
  const u = requireObject(body, 'user');
  return {
    password: requireString(u, 'password', PASSWORD),
    originalPassword: requireString(u, 'original_password', PASSWORD),
  };
}

// ---- POST /v3/auth/tokens ----

export type ScopeRequest =
  | { kind: 'project'; project: EntityRef }
  /** No scope given: Keystone scopes to the user's default project when it can. */
  | { kind: 'default' }
  | { kind: 'unscoped' };

export interface AuthRequest {
  methods: string[];
  password?: { user: EntityRef; password: string };
  token?: { id: string };
  scope: ScopeRequest;
}

const SUPPORTED_METHODS = new Set(['password', 'token']);

function parseDomainRef(parent: JsonObject, field: string): DomainRef {
  const d = requireObject(parent, 'domain', `${field}.domain`);
  const id = optString(d, 'id', { min: 1, max: 64 }, `${field}.domain.id`);
  const name = optString(d, 'name', { min: 1, max: 255 }, `${field}.domain.name`);
  if (id === undefined && name === undefined) throw new ValidationError(`Expecting to find id or name in ${field}.domain.`);
  return { id, name };
}

/** A user or project given by id, or by name plus domain. */
function parseEntityRef(obj: JsonObject, field: string): EntityRef {
  const id = optString(obj, 'id', { min: 1, max: 64 }, `${field}.id`);
  if (id !== undefined) return { id };
  const name = optString(obj, 'name', { min: 1, max: 255 }, `${field}.name`);
  if (name === undefined) throw new ValidationError(`Expecting to find id or name in ${field}.`);
  if (obj.domain === undefined) throw new ValidationError(`Expecting to find domain in ${field}.`);
  return { name, domain: parseDomainRef(obj, field) };
}

function parseScope(auth: JsonObject): ScopeRequest {
  const s = auth.scope;
  if (s === undefined || s === null) return { kind: 'default' };
  if (s === 'unscoped') return { kind: 'unscoped' };
  if (!isObject(s)) throw invalid('scope', `${typeName(s)} is not of type 'object'`);
  if (isObject(s.project)) return { kind: 'project', project: parseEntityRef(s.project, 'scope.project') };
  if (s.domain !== undefined || s.system !== undefined || s['OS-TRUST:trust'] !== undefined) {
    throw new ValidationError('Only project-scoped and unscoped tokens are supported.');
  }
  throw invalid('scope', "expecting 'project'");
}

export function parseAuthRequest(body: unknown): AuthRequest {
  const auth = requireObject(body, 'auth');
  const identity = requireObject(auth, 'identity', 'auth.identity');
  const methods = optStringList(identity, 'methods', { maxItems: 5 });
  if (!methods || methods.length === 0) throw new ValidationError("'methods' is a required property");
  // Keystone answers an unknown method with 401, not 400.
  if (!methods.every((m) => SUPPORTED_METHODS.has(m))) throw new Unauthorized('Attempted to authenticate with an unsupported method.');
  const req: AuthRequest = { methods: [...new Set(methods)], scope: parseScope(auth) };
  if (methods.includes('password')) {
    const pw = requireObject(identity, 'password', 'identity.password');
    const user = requireObject(pw, 'user', 'identity.password.user');
    req.password = {
      user: parseEntityRef(user, 'user'),
      password: requireString(user, 'password', PASSWORD, 'identity.password.user.password'),
    };
  }
  if (methods.includes('token')) {
    const t = requireObject(identity, 'token', 'identity.token');
    req.token = { id: requireString(t, 'id', { min: 1, max: 1024 }, 'identity.token.id') };
  }
  return req;
}
