// Token lifecycle: issue (POST /v3/auth/tokens), resolve (every authenticated
// request, on both APIs), revoke.
//
// Tokens are opaque random secrets; the database keeps only their SHA-256.
// Nothing about roles is stored with a token: validation recomputes them from
// the grants, so a revoked grant takes effect without re-issuing tokens.
//
// Resolution is on the hot path of every Networking API request, so validated
// tokens are cached in memory for a few seconds (never past their expiry).
// Every write through this process (revocation, grants, users, projects)
// empties the cache at once; another process sharing a PostgreSQL sees such a
// change at most `cacheTtlMs` late.
import type { Store } from '../../store/database.ts';
import type { AuthContext } from '../context.ts';
import { ExpiringCache } from './cache.ts';
import type { Directory } from './directory.ts';
import { Unauthorized } from './errors.ts';
import type { AuthRequest } from './input.ts';
import type { TokenInfo } from './model.ts';
import * as repo from './repository.ts';
import { hashToken, newAuditId, newTokenSecret } from './secrets.ts';

export interface TokenOptions {
  tokenTtlSeconds: number;
  cacheTtlMs: number;
  cacheMaxEntries: number;
}

// Our tokens are 43 characters; anything far longer is not worth a hash and a query.
const MAX_TOKEN_LENGTH = 1024;
const PRUNE_INTERVAL_MS = 60_000;

export class TokenService {
  private readonly cache: ExpiringCache<TokenInfo>;
  /** Lookups under way, so a burst of requests with one uncached token costs one query. */
  private readonly inflight = new Map<string, Promise<TokenInfo | null>>();
  /** Bumped by every invalidation: a lookup that started before one must not refill the cache. */
  private epoch = 0;
  private lastPrune = 0;

  constructor(
    private readonly store: Store,
    private readonly directory: Directory,
    private readonly opts: TokenOptions,
  ) {
    this.cache = new ExpiringCache(opts.cacheMaxEntries);
  }

  /** Forget every cached validation; called after any identity write in this process. */
  invalidate(): void {
    this.epoch++;
    this.cache.clear();
    this.inflight.clear();
  }

  /** Checks the credentials of an auth request and issues a token; 401 on any failure, without saying which. */
  async authenticate(req: AuthRequest): Promise<{ token: string; info: TokenInfo }> {
    let userId: string | undefined;
    let methods = req.methods;
    let expiresAt: Date | undefined;
    if (req.password) {
      const user = await this.directory.checkPassword(req.password.user, req.password.password);
      if (!user) throw new Unauthorized();
      userId = user.id;
    }
    if (req.token) {
      // Re-scoping an existing token: same user, and never a longer life than the original.
      const original = await this.resolve(req.token.id);
      if (!original || (userId !== undefined && original.user.id !== userId)) throw new Unauthorized();
      userId = original.user.id;
      methods = [...new Set([...original.methods, ...methods])];
      expiresAt = original.expiresAt;
    }
    if (userId === undefined) throw new Unauthorized();
    const projectId = await this.scopeProject(userId, req);
    return this.issue(userId, projectId, methods, expiresAt);
  }

  /** The project the token is for; null for unscoped. 401 when the user holds no role there. */
  private async scopeProject(userId: string, req: AuthRequest): Promise<string | null> {
    const scope = req.scope;
    if (scope.kind === 'unscoped') return null;
    if (scope.kind === 'default') {
      // Keystone scopes an auth request without scope to the user's default
      // project when that still works, and issues an unscoped token otherwise.
      const user = await this.directory.getUser(userId);
      const p = user.default_project_id;
      return p !== null && (await this.usableProject(userId, p)) ? p : null;
    }
    const project = await this.directory.resolveProject(scope.project);
    if (!project || !(await this.usableProject(userId, project.id))) throw new Unauthorized();
    return project.id;
  }

  private async usableProject(userId: string, projectId: string): Promise<boolean> {
    const project = await repo.getProject(this.store.db, projectId);
    if (!project || project.enabled !== 1) return false;
    const domain = await repo.getDomain(this.store.db, project.domain_id);
    return domain?.enabled === 1 && (await this.directory.userHasRoleOn(userId, projectId));
  }

  /** Issues a token without checking credentials (they were checked by the caller). */
  async issue(userId: string, projectId: string | null, methods: string[], notAfter?: Date): Promise<{ token: string; info: TokenInfo }> {
    const token = newTokenSecret();
    const issuedAt = new Date();
    let expiresAt = new Date(issuedAt.getTime() + this.opts.tokenTtlSeconds * 1000);
    if (notAfter && notAfter < expiresAt) expiresAt = notAfter;
    await repo.insertToken(this.store.db, {
      token_hash: hashToken(token), user_id: userId, project_id: projectId, methods: JSON.stringify(methods),
      audit_id: newAuditId(), issued_at: issuedAt.toISOString(), expires_at: expiresAt.toISOString(), revoked: 0,
    });
    await this.pruneExpired(issuedAt);
    const info = await this.load(hashToken(token));
    // Only possible if the user or project vanished in between.
    if (!info) throw new Unauthorized();
    return { token, info };
  }

  /** The token's user, scope and roles, or null when unknown, expired, revoked or no longer usable. */
  async resolve(token: string): Promise<TokenInfo | null> {
    if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) return null;
    const hash = hashToken(token);
    const hit = this.cache.get(hash);
    if (hit) return hit;
    const pending = this.inflight.get(hash);
    if (pending) return pending;
    const epoch = this.epoch;
    const lookup = this.load(hash).then((info) => {
      if (info && epoch === this.epoch) {
        this.cache.set(hash, info, Math.min(Date.now() + this.opts.cacheTtlMs, info.expiresAt.getTime()));
      }
      return info;
    }).finally(() => {
      if (this.inflight.get(hash) === lookup) this.inflight.delete(hash);
    });
    this.inflight.set(hash, lookup);
    return lookup;
  }

  /** The Networking API's view of a token; null unless it is valid and scoped to a project. */
  async validate(token: string): Promise<AuthContext | null> {
    const info = await this.resolve(token);
    return info ? toAuthContext(info) : null;
  }

  /** Revokes the token for good; false when it was unknown or already revoked. */
  async revoke(token: string): Promise<boolean> {
    const hash = hashToken(token);
    const done = await repo.revokeToken(this.store.db, hash);
    // Only this token leaves the cache; the epoch bump keeps a lookup that
    // raced with the revocation from putting it back.
    this.epoch++;
    this.cache.delete(hash);
    this.inflight.delete(hash);
    return done;
  }

  private async load(hash: string): Promise<TokenInfo | null> {
    const row = await repo.getTokenJoined(this.store.db, hash);
    if (!row || row.revoked !== 0 || row.user_enabled !== 1 || row.user_domain_enabled !== 1) return null;
    const expiresAt = new Date(row.expires_at);
    if (!(expiresAt.getTime() > Date.now())) return null;
    const info: TokenInfo = {
      tokenHash: hash,
      user: { id: row.user_id, name: row.user_name, domainId: row.user_domain_id, domainName: row.user_domain_name },
      project: null,
      roles: [],
      methods: parseMethods(row.methods),
      auditId: row.audit_id,
      issuedAt: new Date(row.issued_at),
      expiresAt,
    };
    if (row.project_id === null) return info;
    if (row.project_name === null || row.project_enabled !== 1 || row.project_domain_enabled !== 1) return null;
    const roles = await this.directory.effectiveRoles(row.user_id, row.project_id);
    // A project token whose user lost every role there is no longer valid (Keystone does the same).
    if (roles.length === 0) return null;
    info.project = { id: row.project_id, name: row.project_name, domainId: row.project_domain_id!, domainName: row.project_domain_name! };
    info.roles = roles;
    return info;
  }

  private async pruneExpired(t: Date): Promise<void> {
    if (t.getTime() - this.lastPrune < PRUNE_INTERVAL_MS) return;
    this.lastPrune = t.getTime();
    await repo.pruneTokens(this.store.db, t.toISOString());
  }
}

function parseMethods(text: string): string[] {
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) && v.every((m) => typeof m === 'string') ? v : ['password'];
  } catch {
    return ['password'];
  }
}

/** The caller as the Networking API sees it; unscoped tokens carry no project and are refused there. */
export function toAuthContext(info: TokenInfo): AuthContext | null {
  if (!info.project) return null;
  const roles = info.roles.map((r) => r.name);
  const isAdmin = roles.includes('admin');
  return {
    userId: info.user.id,
    userName: info.user.name,
    projectId: info.project.id,
    projectName: info.project.name,
    domainId: info.project.domainId,
    roles,
    isAdmin,
    canWrite: isAdmin || roles.includes('member'),
    expiresAt: info.expiresAt.toISOString(),
  };
}
