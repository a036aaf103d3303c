// Neutron's quotas and quota_details extensions: per-project limits stored as
// overrides over the defaults (src/services/quota-limits.ts enforces them on
// every create). Behaviour follows neutron/extensions/quotasv2.py and the DB
// quota driver: a project may read its own quotas without any policy check;
// reading another project's, listing, changing and resetting are admin-only.
import type { AuthContext } from '../identity/context.ts';
import { BadRequest, HTTPBadRequest, InvalidInput, NeutronError, NotFound, PolicyNotAuthorized } from '../errors.ts';
import type { Store } from '../store/database.ts';
import { countUsage, QUOTA_DEFAULTS, quotaLimits, quotaResources } from './quota-limits.ts';

/** neutron_lib.db.constants.DB_INTEGER_MAX_VALUE: the largest limit the column holds. */
export const MAX_QUOTA_LIMIT = 2 ** 31 - 1;

export type QuotaSet = Record<string, number>;
export interface QuotaUsage { limit: number; used: number; reserved: number }

/** DELETE on a project that has no stored overrides (neutron's exception, 404). */
export class TenantQuotaNotFound extends NotFound {
  constructor(projectId: string) {
    super(`Quota for tenant ${projectId} could not be found.`);
  }
}

/** /quotas/tenant and /quotas/project with a token not scoped to a project. */
export class QuotaMissingTenant extends BadRequest {
  constructor() {
    super('Tenant-id was missing from quota request.');
  }
}

/** webob's 501, which Neutron answers to POST /v2.0/quotas. */
export class HTTPNotImplemented extends NeutronError {
  readonly status = 501;
}

/** Python's str() of a JSON value, as Neutron's messages print what they were sent. */
function pyStr(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  return JSON.stringify(v).replace(/"/g, "'").replace(/,/g, ', ').replace(/:/g, ': ');
}

/** Python truthiness: Neutron tests `if check_limit:` on whatever was sent. */
function pyTruthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0;
  if (v !== null && typeof v === 'object') return Object.keys(v).length > 0;
  return Boolean(v);
}

/**
 * neutron_lib's convert_to_int (Python's int()): booleans, finite numbers
 * (truncated) and integer strings convert; anything else is InvalidInput.
 */
function convertToInt(v: unknown): number {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'number' && Number.isFinite(v)) return Math.trunc(v);
  if (typeof v === 'string' && /^\s*[+-]?\d+\s*$/.test(v)) return Number(v.trim());
  throw new InvalidInput(`'${pyStr(v)}' is not an integer`);
}

/** The body of PUT /v2.0/quotas/{project_id}, validated as prepare_request_body does. */
export interface QuotaUpdate {
  limits: QuotaSet;
  /** quota-check-limit: refuse a limit below what the project already uses. */
  checkLimit: boolean;
}

export function parseQuotaUpdate(body: unknown): QuotaUpdate {
  if (body === null || typeof body !== 'object' || Array.isArray(body) || !('quota' in body)) {
    throw new HTTPBadRequest("Unable to find 'quota' in request body");
  }
  const raw = (body as Record<string, unknown>).quota;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new HTTPBadRequest("Object 'quota' contains invalid data");
  }
  // Neutron pops these two before validating: `force` is the default
  // behaviour and is accepted for the CLI's --force, `check_limit` turns the
  // usage check on (quota-check-limit).
  const { force: _force, check_limit: checkLimit, ...rest } = raw as Record<string, unknown>;
  const known = new Set(quotaResources());
  const unknown = Object.keys(rest).filter((k) => !known.has(k));
  if (unknown.length) throw new HTTPBadRequest(`Unrecognized attribute(s) '${unknown.join(', ')}'`);
  const limits: QuotaSet = {};
  // Converted in resource order, like convert_values walking the attribute map.
  for (const resource of quotaResources()) {
    if (!(resource in rest)) continue;
    const n = convertToInt(rest[resource]);
    if (n < -1) throw new HTTPBadRequest(`Invalid input for ${resource}. Reason: '${n}' is too small - must be at least '-1'.`);
    if (n > MAX_QUOTA_LIMIT) {
      throw new HTTPBadRequest(`Invalid input for ${resource}. Reason: '${n}' is too large - must be no larger than '${MAX_QUOTA_LIMIT}'.`);
    }
    limits[resource] = n;
  }
  return { limits, checkLimit: pyTruthy(checkLimit) };
}

export class QuotaService {
  constructor(readonly store: Store) {}

  /** Neutron skips the get_quota rule for the caller's own project; for any other it is admin-only. */
  private authorizeRead(ctx: AuthContext, projectId: string): void {
    if (projectId !== ctx.projectId && !ctx.isAdmin) throw new PolicyNotAuthorized('rule:get_quota');
  }

  private static authorizeAdmin(ctx: AuthContext, rule: string): void {
    if (!ctx.isAdmin) throw new PolicyNotAuthorized(`rule:${rule}`);
  }

  /** GET /v2.0/quotas: every project with at least one stored override, defaults filled in. */
  async list(ctx: AuthContext): Promise<Array<Record<string, number | string>>> {
    QuotaService.authorizeAdmin(ctx, 'get_quota');
    const rows = await this.store.db.selectFrom('quotas').selectAll()
      .orderBy('project_id').orderBy('resource').execute();
    const byProject = new Map<string, Record<string, number | string>>();
    for (const r of rows) {
      let q = byProject.get(r.project_id);
      if (!q) {
        // Key order as Neutron's get_all_quotas builds it: limits, then the ids.
        q = { ...QUOTA_DEFAULTS, tenant_id: r.project_id, project_id: r.project_id };
        byProject.set(r.project_id, q);
      }
      if (r.resource in QUOTA_DEFAULTS) q[r.resource] = r.hard_limit;
    }
    return [...byProject.values()];
  }

  /** GET /v2.0/quotas/{project_id}: the project's effective limits. */
  async show(ctx: AuthContext, projectId: string): Promise<QuotaSet> {
    this.authorizeRead(ctx, projectId);
    return this.limits(projectId);
  }

  /** GET /v2.0/quotas/{project_id}/default: the configured defaults (the same for every project). */
  async defaults(ctx: AuthContext, projectId: string): Promise<QuotaSet> {
    this.authorizeRead(ctx, projectId);
    return { ...QUOTA_DEFAULTS };
  }

  /** GET /v2.0/quotas/{project_id}/details: limit, usage and (always 0: no reservations) reserved. */
  async details(ctx: AuthContext, projectId: string): Promise<Record<string, QuotaUsage>> {
    this.authorizeRead(ctx, projectId);
    const db = this.store.db;
    const limits = await quotaLimits(db, projectId);
    const used = await Promise.all(quotaResources().map((r) => countUsage(db, r, projectId)));
    const out: Record<string, QuotaUsage> = {};
    quotaResources().forEach((r, i) => { out[r] = { limit: limits[r], used: used[i], reserved: 0 }; });
    return out;
  }

  /** PUT /v2.0/quotas/{project_id}: stores the given limits; answers the project's limits. */
  async update(ctx: AuthContext, projectId: string, body: unknown): Promise<QuotaSet> {
    QuotaService.authorizeAdmin(ctx, 'update_quota');
    const { limits, checkLimit } = parseQuotaUpdate(body);
    await this.store.transaction(async (tx) => {
      for (const [resource, limit] of Object.entries(limits)) {
        // Neutron compares usage > limit even for -1, refusing "unlimited";
        // an unlimited quota can never be below usage, so it passes here.
        if (checkLimit && limit >= 0) {
          const used = await countUsage(tx, resource, projectId);
          if (used > limit) {
            throw new HTTPBadRequest(`Quota limit ${limit} for ${resource} must be greater than or equal to already used ${used}`);
          }
        }
        await tx.insertInto('quotas').values({ project_id: projectId, resource, hard_limit: limit })
          .onConflict((oc) => oc.columns(['project_id', 'resource']).doUpdateSet({ hard_limit: limit }))
          .execute();
      }
    });
    return this.limits(projectId);
  }

  /** DELETE /v2.0/quotas/{project_id}: back to the defaults; 404 when there was nothing to reset. */
  async reset(ctx: AuthContext, projectId: string): Promise<void> {
    QuotaService.authorizeAdmin(ctx, 'delete_quota');
    const r = await this.store.db.deleteFrom('quotas').where('project_id', '=', projectId).executeTakeFirst();
    if (Number(r.numDeletedRows) === 0) throw new TenantQuotaNotFound(projectId);
  }

  private async limits(projectId: string): Promise<QuotaSet> {
    const all = await quotaLimits(this.store.db, projectId);
    // Only registered resources, in registry order (a stale row for a resource
    // no longer known must not leak onto the wire).
    const out: QuotaSet = {};
    for (const r of quotaResources()) out[r] = all[r];
    return out;
  }
}
