// Identity policy, a small subset of Keystone's defaults as code: identity
// administration needs the admin role; a user may read itself, its own
// projects and grants, and its own tokens. Refusals name the rule the way
// Keystone does ("identity:create_project").
import { Forbidden } from './errors.ts';
import type { TokenInfo } from './model.ts';

/** What a rule may look at besides the caller. */
export interface Target {
  /** The user the request is about (GET /v3/users/{id}, a grant's user, a token's subject). */
  userId?: string;
  /** The request is about a project the caller holds a role on. */
  callerHasRoleOnProject?: boolean;
  /** The domain the request is about. */
  domainId?: string;
}

type Rule = (caller: TokenInfo, target: Target) => boolean;

export function isAdmin(caller: TokenInfo): boolean {
  return caller.roles.some((r) => r.name === 'admin');
}

const admin: Rule = (c) => isAdmin(c);
const self: Rule = (c, t) => t.userId !== undefined && t.userId === c.user.id;
const ownProject: Rule = (c, t) => t.callerHasRoleOnProject === true;
const ownDomain: Rule = (c, t) => t.domainId !== undefined && (t.domainId === c.user.domainId || t.domainId === c.project?.domainId);
const anyOf = (...rules: Rule[]): Rule => (c, t) => rules.some((r) => r(c, t));

const RULES = {
  'identity:list_projects': admin,
  'identity:get_project': anyOf(admin, ownProject),
  'identity:create_project': admin,
  'identity:update_project': admin,
  'identity:delete_project': admin,
  'identity:list_users': admin,
  'identity:get_user': anyOf(admin, self),
  'identity:create_user': admin,
  'identity:update_user': admin,
  'identity:delete_user': admin,
  'identity:change_password': self,
  'identity:list_user_projects': anyOf(admin, self),
  'identity:list_roles': admin,
  'identity:get_role': admin,
  'identity:list_domains': admin,
  'identity:get_domain': anyOf(admin, ownDomain),
  'identity:list_grants': anyOf(admin, self),
  'identity:check_grant': anyOf(admin, self),
  'identity:create_grant': admin,
  'identity:revoke_grant': admin,
  'identity:list_role_assignments': anyOf(admin, self),
  'identity:validate_token': anyOf(admin, self),
  'identity:check_token': anyOf(admin, self),
  'identity:revoke_token': anyOf(admin, self),
} satisfies Record<string, Rule>;

export type Action = keyof typeof RULES;

export function allowed(action: Action, caller: TokenInfo, target: Target = {}): boolean {
  return RULES[action](caller, target);
}

/** Throws 403 Forbidden naming the action when the caller may not perform it. */
export function enforce(action: Action, caller: TokenInfo, target: Target = {}): void {
  if (!allowed(action, caller, target)) throw new Forbidden(action);
}
