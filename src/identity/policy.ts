// Neutron's default policy, as code: admin sees and changes everything; member
// reads and writes its own project; reader only reads; another project's
// resources are invisible (404, not 403). Attribute rules (admin-only
// attributes such as shared or provider:*) derive from the resource
// definitions in src/resources.
import { PolicyNotAuthorized, HTTPBadRequest } from '../errors.ts';
import type { ResourceDef, Body } from '../resources/attributes.ts';
import type { AuthContext } from './context.ts';

export type Action = 'create' | 'update' | 'delete' | 'get';

/** True when the caller may act on a resource owned by projectId. */
export function isOwnerOrAdmin(ctx: AuthContext, projectId: string): boolean {
  return ctx.isAdmin || ctx.projectId === projectId;
}

/**
 * Attributes the caller explicitly set to something other than the default, as
 * Neutron's policy engine counts them (a member posting shared=false is fine).
 */
function explicitlySet(def: ResourceDef, raw: Body): string[] {
  return Object.keys(raw).filter((name) => {
    const attr = def.attributes[name];
    if (!attr?.adminSet) return false;
    return !('default' in attr) || JSON.stringify(raw[name]) !== JSON.stringify(attr.default);
  });
}

/**
 * Write access for one request, before the resource is looked at: readers may
 * not write, and only admins set admin-only attributes. The message matches
 * oslo.policy's rendering of Neutron's composed rule.
 */
export function authorizeWrite(ctx: AuthContext, def: ResourceDef, action: 'create' | 'update' | 'delete', raw: Body = {}): void {
  const base = `rule:${action}_${def.name}`;
  const attrs = action === 'delete' ? [] : explicitlySet(def, raw);
  if (ctx.isAdmin) return;
  if (ctx.canWrite && attrs.length === 0) return;
  let rule = base;
  for (const a of attrs) rule = `(${rule} and rule:${action}_${def.name}:${a})`;
  throw new PolicyNotAuthorized(rule);
}

/**
 * Which project a new resource belongs to: the caller's, unless an admin names
 * another one. tenant_id and project_id are synonyms and must agree.
 */
export function owningProject(ctx: AuthContext, body: Body): string {
  const p = body.project_id as string | undefined;
  const t = body.tenant_id as string | undefined;
  if (p !== undefined && t !== undefined && p !== t) {
    throw new HTTPBadRequest("'project_id' and 'tenant_id' do not match");
  }
  const wanted = p ?? t;
  if (wanted === undefined || wanted === ctx.projectId) return ctx.projectId;
  if (!ctx.isAdmin) {
    throw new HTTPBadRequest("Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges");
  }
  return wanted;
}

/** The wire attributes this caller may see. */
export function visibleAttributeNames(ctx: AuthContext, def: ResourceDef): string[] {
  return Object.entries(def.attributes)
    .filter(([, a]) => !a.hidden && (!a.adminSee || ctx.isAdmin))
    .map(([n]) => n);
}
