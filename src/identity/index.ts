// The identity service: a Keystone v3 subset on its own port (default 5000).
// It issues and validates the tokens the Networking API accepts, and is
// enough for the OpenStack CLI to authenticate and manage projects, users
// and role grants. See keystone/ for the parts:
//   input.ts (parsing) → access.ts (policy) → directory.ts / tokens.ts (logic)
//   → repository.ts (SQL) and views.ts (wire format); app.ts + routes.ts (HTTP).
import type { FastifyInstance } from 'fastify';
import type { Store } from '../store/database.ts';
import type { AuthContext, TokenValidator } from './context.ts';
import { buildApp } from './keystone/app.ts';
import { DEFAULT_DOMAIN_ID, Directory } from './keystone/directory.ts';
import type { Endpoints } from './keystone/model.ts';
import { TokenService } from './keystone/tokens.ts';

export type { Endpoints } from './keystone/model.ts';
export { writeCloudsYaml } from './clouds-yaml.ts';

export interface Identity extends TokenValidator {
  /** Keystone routes, built but not listening. */
  app: FastifyInstance;
  /**
   * First start: create domain `default` (name Default), roles admin/member/reader
   * with implications admin⊃member⊃reader, project `admin`, user `admin` with the
   * admin role on it. Password: adminPassword if given, else generated. Later
   * starts: if adminPassword is given and differs, reset it (like keystone-manage
   * bootstrap). Returns the password in clear only when it was generated or
   * set/changed now (generatedPassword), else null; passwordChanged is true when
   * the stored admin password was set or reset by this call.
   */
  bootstrap(adminPassword?: string): Promise<{ generatedPassword: string | null; passwordChanged: boolean }>;
  /** Convenience used by tests and tooling: ensure project+user exist (default domain) and assign role; returns ids. */
  ensureUser(opts: { project: string; user: string; password: string; role: 'admin' | 'member' | 'reader' }): Promise<{ projectId: string; userId: string }>;
  /** Issue a project-scoped token directly (same as POST /v3/auth/tokens); returns the token string. */
  issueToken(user: string, password: string, project: string): Promise<string>;
}

/** How long a validated token is trusted without asking the database again. */
const CACHE_TTL_MS = 5_000;
const CACHE_MAX_ENTRIES = 50_000;

export async function createIdentity(
  store: Store,
  endpoints: Endpoints,
  opts: { tokenTtlSeconds?: number; logger?: boolean | object } = {},
): Promise<Identity> {
  const tokenTtlSeconds = opts.tokenTtlSeconds ?? 3600;
  if (!(tokenTtlSeconds > 0)) throw new RangeError('tokenTtlSeconds must be positive');
  // The directory reports every write; the token service then drops its cache,
  // so a revoked grant or a deleted user takes effect at once in this process.
  let onDirectoryChange = (): void => {};
  const directory = new Directory(store, CACHE_TTL_MS, () => onDirectoryChange());
  const tokens = new TokenService(store, directory, { tokenTtlSeconds, cacheTtlMs: CACHE_TTL_MS, cacheMaxEntries: CACHE_MAX_ENTRIES });
  onDirectoryChange = () => tokens.invalidate();
  const app = buildApp({ endpoints, tokens, directory }, opts.logger);

  return {
    app,
    validateToken: (token: string): Promise<AuthContext | null> => tokens.validate(token),
    bootstrap: (adminPassword?: string) => directory.bootstrap(adminPassword),
    ensureUser: (o) => directory.ensureUser(o),
    async issueToken(user: string, password: string, project: string): Promise<string> {
      const { token } = await tokens.authenticate({
        methods: ['password'],
        password: { user: { name: user, domain: { id: DEFAULT_DOMAIN_ID } }, password },
        scope: { kind: 'project', project: { name: project, domain: { id: DEFAULT_DOMAIN_ID } } },
      });
      return token;
    },
  };
}

