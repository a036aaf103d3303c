// The identity service (Keystone v3 subset) over HTTP, on SQLite and
// PostgreSQL: bootstrap, tokens, CRUD, grants, policy, clouds.yaml and the
// real OpenStack CLI against it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { forEachBackend } from './support/backends.ts';
import type { Store } from '../src/store/database.ts';
import { createIdentity, writeCloudsYaml, type Endpoints, type Identity } from '../src/identity/index.ts';

const run = promisify(execFile);
const ADMIN_PASSWORD = 'admin-secret-1';
const WIRE_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
const HEX32 = /^[0-9a-f]{32}$/;
const UNAUTHORIZED = { error: { code: 401, message: 'The request you have made requires authentication.', title: 'Unauthorized' } };

// eslint-style loose JSON for assertions on bodies.
type Body = Record<string, any>;
interface Reply { status: number; headers: Headers; body: Body }

interface Call {
  token?: string;
  subject?: string;
  body?: unknown;
  /** Sent verbatim instead of JSON.stringify(body). */
  raw?: string;
}

type UserRef = { name: string; domain: { id?: string; name?: string } } | { id: string };
type ProjectRef = UserRef;

function passwordAuth(user: UserRef, password: string, project?: ProjectRef): Body {
  return {
    auth: {
      identity: { methods: ['password'], password: { user: { ...user, password } } },
      ...(project && { scope: { project } }),
    },
  };
}

const cliAvailable = await run('openstack', ['--version']).then(() => true, () => false);

/** Runs the real OpenStack CLI against a clouds.yaml, with no OS_* variables leaking in from the environment. */
async function openstack(cloudsFile: string, args: string[]): Promise<string> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('OS_')) env[k] = v;
  env.OS_CLIENT_CONFIG_FILE = cloudsFile;
  const { stdout } = await run('openstack', ['--os-cloud', 'nucleon', ...args], { env, timeout: 60_000 });
  return stdout;
}

forEachBackend((backend) => {
  describe(`identity on ${backend.name}`, () => {
    let store: Store;
    let identity: Identity;
    let base: string;
    const endpoints: Endpoints = { identityUrl: '', networkUrl: 'http://127.0.0.1:9696', region: 'RegionOne' };
    let firstBoot: { generatedPassword: string | null; passwordChanged: boolean };
    let adminToken: string;

    async function call(method: string, url: string, c: Call = {}): Promise<Reply> {
      const headers: Record<string, string> = {};
      if (c.token) headers['x-auth-token'] = c.token;
      if (c.subject) headers['x-subject-token'] = c.subject;
      const payload = c.raw ?? (c.body === undefined ? undefined : JSON.stringify(c.body));
      if (payload !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(base + url, { method, headers, body: payload, redirect: 'manual' });
      const text = await res.text();
      return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : {} };
    }

    async function issue(user: UserRef, password: string, project?: ProjectRef, query = ''): Promise<Reply> {
      return call('POST', `/v3/auth/tokens${query}`, { body: passwordAuth(user, password, project) });
    }

    const def = { name: 'Default' };

    before(async () => {
      store = await backend.openStore();
      identity = await createIdentity(store, endpoints);
      firstBoot = await identity.bootstrap(ADMIN_PASSWORD);
      base = await identity.app.listen({ port: 0, host: '127.0.0.1' });
      endpoints.identityUrl = base;
      adminToken = await identity.issueToken('admin', ADMIN_PASSWORD, 'admin');
    });

    after(async () => {
      await identity.app.close();
    });

    describe('bootstrap', () => {
      it('sets the given password on first start and reports it', () => {
        assert.deepEqual(firstBoot, { generatedPassword: ADMIN_PASSWORD, passwordChanged: true });
      });

      it('is idempotent, resets a different password and generates one for a fresh store', async () => {
        assert.deepEqual(await identity.bootstrap(ADMIN_PASSWORD), { generatedPassword: null, passwordChanged: false });
        assert.deepEqual(await identity.bootstrap(), { generatedPassword: null, passwordChanged: false });
        const reset = await identity.bootstrap('another-password');
        assert.deepEqual(reset, { generatedPassword: 'another-password', passwordChanged: true });
        assert.equal((await issue({ name: 'admin', domain: def }, ADMIN_PASSWORD, { name: 'admin', domain: def })).status, 401);
        assert.equal((await identity.bootstrap(ADMIN_PASSWORD)).passwordChanged, true);
        // A password change revokes the user's tokens, as in Keystone.
        adminToken = await identity.issueToken('admin', ADMIN_PASSWORD, 'admin');

        const other = await backend.openStore();
        const fresh = await createIdentity(other, endpoints);
        const boot = await fresh.bootstrap();
        assert.equal(boot.passwordChanged, true);
        assert.ok(boot.generatedPassword && boot.generatedPassword.length >= 16);
        assert.ok(await fresh.validateToken(await fresh.issueToken('admin', boot.generatedPassword, 'admin')));
      });

      it('creates domain default, roles with implications, and the admin grant', async () => {
        const domain = await call('GET', '/v3/domains/default', { token: adminToken });
        assert.equal(domain.status, 200);
        assert.equal(domain.body.domain.name, 'Default');
        const roles = await call('GET', '/v3/roles', { token: adminToken });
        assert.deepEqual(roles.body.roles.map((r: Body) => r.name).sort(), ['admin', 'member', 'reader']);
        for (const r of roles.body.roles) assert.match(r.id, HEX32);
        const ctx = await identity.validateToken(adminToken);
        assert.ok(ctx);
        assert.deepEqual([...ctx.roles].sort(), ['admin', 'member', 'reader']);
        assert.equal(ctx.isAdmin, true);
        assert.equal(ctx.canWrite, true);
        assert.equal(ctx.projectName, 'admin');
        assert.equal(ctx.domainId, 'default');
      });
    });

    describe('versions', () => {
      it('GET / is 300 with a Location, GET /v3 and /v3/ the v3.14 document', async () => {
        const root = await call('GET', '/');
        assert.equal(root.status, 300);
        assert.equal(root.headers.get('location'), `${base}/v3/`);
        assert.equal(root.body.versions.values[0].id, 'v3.14');
        for (const p of ['/v3', '/v3/']) {
          const v3 = await call('GET', p);
          assert.equal(v3.status, 200);
          assert.deepEqual(v3.body, {
            version: {
              id: 'v3.14', status: 'stable', updated: '2020-04-07T00:00:00Z',
              links: [{ rel: 'self', href: `${base}/v3/` }],
              'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.identity-v3+json' }],
            },
          });
        }
      });
    });

    describe('POST /v3/auth/tokens', () => {
      it('issues a project token by names (domain by name) with Keystone body and catalog', async () => {
        const res = await issue({ name: 'admin', domain: def }, ADMIN_PASSWORD, { name: 'admin', domain: def });
        assert.equal(res.status, 201);
        const token = res.headers.get('x-subject-token');
        assert.ok(token && token.length >= 43);
        assert.match(res.headers.get('x-openstack-request-id') ?? '', /^req-/);
        const t = res.body.token;
        assert.deepEqual(Object.keys(t), ['methods', 'user', 'audit_ids', 'expires_at', 'issued_at', 'project', 'is_domain', 'roles', 'catalog']);
        assert.deepEqual(t.methods, ['password']);
        assert.deepEqual(t.user.domain, { id: 'default', name: 'Default' });
        assert.equal(t.user.name, 'admin');
        assert.match(t.user.id, HEX32);
        assert.equal(t.user.password_expires_at, null);
        assert.match(t.audit_ids[0], /^[A-Za-z0-9_-]{22}$/);
        assert.match(t.expires_at, WIRE_TIME);
        assert.match(t.issued_at, WIRE_TIME);
        const ttl = Date.parse(t.expires_at) - Date.parse(t.issued_at);
        assert.equal(ttl, 3600_000);
        assert.deepEqual(t.project.domain, { id: 'default', name: 'Default' });
        assert.equal(t.project.name, 'admin');
        assert.equal(t.is_domain, false);
        assert.deepEqual(t.roles.map((r: Body) => r.name).sort(), ['admin', 'member', 'reader']);
        const byType = Object.fromEntries(t.catalog.map((s: Body) => [s.type, s]));
        assert.equal(byType.identity.name, 'keystone');
        assert.equal(byType.network.name, 'neutron');
        for (const [type, url] of [['identity', `${base}/v3/`], ['network', 'http://127.0.0.1:9696']]) {
          const eps = byType[type].endpoints;
          assert.deepEqual(eps.map((e: Body) => e.interface).sort(), ['admin', 'internal', 'public']);
          for (const e of eps) assert.deepEqual({ url: e.url, region: e.region, region_id: e.region_id }, { url, region: 'RegionOne', region_id: 'RegionOne' });
        }
      });

      it('accepts user and project by id, domain by id or by either spelling', async () => {
        const ctx = (await identity.validateToken(adminToken))!;
        const byIds = await issue({ id: ctx.userId }, ADMIN_PASSWORD, { id: ctx.projectId });
        assert.equal(byIds.status, 201);
        assert.equal(byIds.body.token.project.id, ctx.projectId);
        for (const domain of [{ id: 'default' }, { name: 'Default' }, { name: 'default' }, { id: 'Default' }]) {
          const res = await issue({ name: 'admin', domain }, ADMIN_PASSWORD, { name: 'admin', domain });
          assert.equal(res.status, 201, JSON.stringify(domain));
        }
      });

      it('omits the catalog with ?nocatalog and issues unscoped tokens on request', async () => {
        const res = await issue({ name: 'admin', domain: def }, ADMIN_PASSWORD, { name: 'admin', domain: def }, '?nocatalog');
        assert.equal(res.status, 201);
        assert.equal('catalog' in res.body.token, false);
        const unscoped = await call('POST', '/v3/auth/tokens', {
          body: { auth: { identity: passwordAuth({ name: 'admin', domain: def }, ADMIN_PASSWORD).auth.identity, scope: 'unscoped' } },
        });
        assert.equal(unscoped.status, 201);
        assert.equal('project' in unscoped.body.token, false);
        const token = unscoped.headers.get('x-subject-token')!;
        // Not usable on the Networking API (no project), but it can list the user's projects.
        assert.equal(await identity.validateToken(token), null);
        const mine = await call('GET', '/v3/auth/projects', { token });
        assert.deepEqual(mine.body.projects.map((p: Body) => p.name), ['admin']);
      });

      it('answers a bad password or unknown user with 401, Keystone body and WWW-Authenticate', async () => {
        for (const user of [{ name: 'admin', domain: def }, { name: 'nobody', domain: def }, { id: 'f'.repeat(32) }]) {
          const res = await issue(user, 'wrong', { name: 'admin', domain: def });
          assert.equal(res.status, 401);
          assert.deepEqual(res.body, UNAUTHORIZED);
          assert.equal(res.headers.get('www-authenticate'), `Keystone uri="${base}/v3"`);
          assert.equal(res.headers.get('x-subject-token'), null);
        }
        // A right password for a project without a grant is refused the same way.
        await identity.ensureUser({ project: 'lonely', user: 'stranger', password: 'pw-stranger', role: 'member' });
        const res = await issue({ name: 'stranger', domain: def }, 'pw-stranger', { name: 'admin', domain: def });
        assert.equal(res.status, 401);
        await assert.rejects(identity.issueToken('admin', 'wrong', 'admin'));
      });

      it('answers malformed bodies with 400 in Keystone format', async () => {
        const cases: Call[] = [
          { raw: '{not json' },
          { body: {} },
          { body: { auth: { identity: { methods: ['password'] } } } },
          { body: { auth: { identity: { methods: ['password'], password: { user: { name: 'admin', password: 'x' } } } } } },
          { body: { auth: { identity: { methods: ['password'], password: { user: { name: 7, domain: def, password: 'x' } } } } } },
          { body: { auth: { identity: { methods: 'password' } } } },
          { body: [1, 2] },
        ];
        for (const c of cases) {
          const res = await call('POST', '/v3/auth/tokens', c);
          assert.equal(res.status, 400, JSON.stringify(c));
          assert.equal(res.body.error.code, 400);
          assert.equal(res.body.error.title, 'Bad Request');
          assert.equal(typeof res.body.error.message, 'string');
        }
        const unknownMethod = await call('POST', '/v3/auth/tokens', { body: { auth: { identity: { methods: ['totp'], totp: {} } } } });
        assert.equal(unknownMethod.status, 401);
      });
    });

    describe('token validation and revocation', () => {
      it('validates with GET and HEAD, revokes with DELETE, then refuses the token everywhere', async () => {
        const token = await identity.issueToken('admin', ADMIN_PASSWORD, 'admin');
        assert.ok(await identity.validateToken(token)); // now cached

        const got = await call('GET', '/v3/auth/tokens', { token: adminToken, subject: token });
        assert.equal(got.status, 200);
        assert.equal(got.headers.get('x-subject-token'), token);
        assert.equal(got.body.token.project.name, 'admin');
        assert.ok(Array.isArray(got.body.token.catalog));
        const head = await fetch(`${base}/v3/auth/tokens`, { method: 'HEAD', headers: { 'x-auth-token': adminToken, 'x-subject-token': token } });
        assert.equal(head.status, 200);

        const del = await call('DELETE', '/v3/auth/tokens', { token: adminToken, subject: token });
        assert.equal(del.status, 204);
        assert.equal(await identity.validateToken(token), null);
        assert.equal((await call('GET', '/v3/auth/tokens', { token: adminToken, subject: token })).status, 404);
        const head404 = await fetch(`${base}/v3/auth/tokens`, { method: 'HEAD', headers: { 'x-auth-token': adminToken, 'x-subject-token': token } });
        assert.equal(head404.status, 404);
        const asCaller = await call('GET', '/v3/projects', { token });
        assert.equal(asCaller.status, 401);
        assert.deepEqual(asCaller.body, UNAUTHORIZED);
        assert.equal((await call('DELETE', '/v3/auth/tokens', { token: adminToken, subject: token })).status, 404);
      });

      it('lets a user validate and revoke its own token but not others', async () => {
        await identity.ensureUser({ project: 'p-self', user: 'u-self', password: 'pw-self', role: 'member' });
        const mine = await identity.issueToken('u-self', 'pw-self', 'p-self');
        const second = await identity.issueToken('u-self', 'pw-self', 'p-self');
        assert.equal((await call('GET', '/v3/auth/tokens', { token: mine, subject: mine })).status, 200);
        assert.equal((await call('GET', '/v3/auth/tokens', { token: mine, subject: adminToken })).status, 403);
        assert.equal((await call('DELETE', '/v3/auth/tokens', { token: mine, subject: second })).status, 204);
        assert.equal(await identity.validateToken(second), null);
        assert.ok(await identity.validateToken(mine));
      });

      it('refuses missing, unknown and absurd tokens', async () => {
        for (const token of [undefined, 'nope', 'x'.repeat(5000)]) {
          const res = await call('GET', '/v3/projects', { token });
          assert.equal(res.status, 401);
          assert.equal(res.headers.get('www-authenticate'), `Keystone uri="${base}/v3"`);
        }
        assert.equal(await identity.validateToken(''), null);
        assert.equal(await identity.validateToken('x'.repeat(5000)), null);
      });

      it('expires tokens after the configured TTL', async () => {
        const shortLived = await createIdentity(store, endpoints, { tokenTtlSeconds: 1 });
        const token = await shortLived.issueToken('admin', ADMIN_PASSWORD, 'admin');
        const ctx = await shortLived.validateToken(token);
        assert.ok(ctx);
        assert.ok(Date.parse(ctx.expiresAt) - Date.now() <= 1000);
        await new Promise((r) => setTimeout(r, 1100));
        assert.equal(await shortLived.validateToken(token), null);
        // The main instance shares the store and sees the same expiry.
        assert.equal((await call('GET', '/v3/auth/tokens', { token: adminToken, subject: token })).status, 404);
      });

      it('coalesces concurrent validations of one token', async () => {
        const token = await identity.issueToken('admin', ADMIN_PASSWORD, 'admin');
        const results = await Promise.all(Array.from({ length: 50 }, () => identity.validateToken(token)));
        assert.ok(results.every((r) => r !== null && r.userName === 'admin'));
        // Callers get their own copies: mutating one does not affect the next.
        results[0]!.roles.push('bogus');
        assert.equal((await identity.validateToken(token))!.roles.includes('bogus'), false);
      });
    });

    describe('projects', () => {
      it('creates, lists by name, shows, updates and deletes', async () => {
        const created = await call('POST', '/v3/projects', { token: adminToken, body: { project: { name: 'crud-p', description: 'first' } } });
        assert.equal(created.status, 201);
        const p = created.body.project;
        assert.match(p.id, HEX32);
        assert.deepEqual({ ...p, id: undefined }, {
          id: undefined, name: 'crud-p', domain_id: 'default', description: 'first', enabled: true, parent_id: 'default',
          is_domain: false, tags: [], options: {}, links: { self: `${base}/v3/projects/${p.id}` },
        });

        const dup = await call('POST', '/v3/projects', { token: adminToken, body: { project: { name: 'crud-p' } } });
        assert.equal(dup.status, 409);
        assert.equal(dup.body.error.title, 'Conflict');
        assert.equal(dup.body.error.code, 409);

        const list = await call('GET', '/v3/projects?name=crud-p', { token: adminToken });
        assert.equal(list.status, 200);
        assert.deepEqual(list.body.projects.map((x: Body) => x.id), [p.id]);
        assert.deepEqual(list.body.links, { self: `${base}/v3/projects?name=crud-p`, previous: null, next: null });
        const all = await call('GET', '/v3/projects', { token: adminToken });
        assert.ok(all.body.projects.length >= 2);

        assert.equal((await call('GET', `/v3/projects/${p.id}`, { token: adminToken })).body.project.name, 'crud-p');
        const upd = await call('PATCH', `/v3/projects/${p.id}`, { token: adminToken, body: { project: { name: 'crud-p2', description: 'second', enabled: false } } });
        assert.equal(upd.status, 200);
        assert.deepEqual([upd.body.project.name, upd.body.project.description, upd.body.project.enabled], ['crud-p2', 'second', false]);
        const toDup = await call('PATCH', `/v3/projects/${p.id}`, { token: adminToken, body: { project: { name: 'admin' } } });
        assert.equal(toDup.status, 409);

        assert.equal((await call('DELETE', `/v3/projects/${p.id}`, { token: adminToken })).status, 204);
        const gone = await call('GET', `/v3/projects/${p.id}`, { token: adminToken });
        assert.equal(gone.status, 404);
        assert.deepEqual(gone.body, { error: { code: 404, message: `Could not find project: ${p.id}.`, title: 'Not Found' } });
        assert.equal((await call('DELETE', `/v3/projects/${p.id}`, { token: adminToken })).status, 404);
      });

      it('rejects bad project bodies with 400', async () => {
        for (const body of [{}, { project: {} }, { project: { name: 5 } }, { project: { name: '' } }, { project: { name: 'x'.repeat(65) } },
          { project: { name: 'ok', enabled: 'yes' } }, { project: { name: 'ok', tags: 'a' } }, { project: { name: 'ok', is_domain: true } }]) {
          const res = await call('POST', '/v3/projects', { token: adminToken, body });
          assert.equal(res.status, 400, JSON.stringify(body));
          assert.equal(res.body.error.title, 'Bad Request');
        }
        const badDomain = await call('POST', '/v3/projects', { token: adminToken, body: { project: { name: 'ok', domain_id: 'nope' } } });
        assert.equal(badDomain.status, 404);
      });

      it('invalidates tokens scoped to a disabled or deleted project', async () => {
        const { projectId } = await identity.ensureUser({ project: 'doomed', user: 'doomed-u', password: 'pw-doomed', role: 'member' });
        const token = await identity.issueToken('doomed-u', 'pw-doomed', 'doomed');
        assert.ok(await identity.validateToken(token));
        await call('PATCH', `/v3/projects/${projectId}`, { token: adminToken, body: { project: { enabled: false } } });
        assert.equal(await identity.validateToken(token), null);
        await call('PATCH', `/v3/projects/${projectId}`, { token: adminToken, body: { project: { enabled: true } } });
        assert.ok(await identity.validateToken(token));
        await call('DELETE', `/v3/projects/${projectId}`, { token: adminToken });
        assert.equal(await identity.validateToken(token), null);
      });
    });

    describe('users', () => {
      it('creates with a password, lists by name, shows, updates the password and deletes', async () => {
        const proj = await call('POST', '/v3/projects', { token: adminToken, body: { project: { name: 'users-p' } } });
        const pid = proj.body.project.id;
        const created = await call('POST', '/v3/users', {
          token: adminToken, body: { user: { name: 'alice', password: 'pw-alice', default_project_id: pid, email: 'a@example.org' } },
        });
        assert.equal(created.status, 201);
        const u = created.body.user;
        assert.match(u.id, HEX32);
        assert.equal('password' in u, false);
        assert.equal('password_hash' in u, false);
        assert.deepEqual(
          { name: u.name, domain_id: u.domain_id, enabled: u.enabled, default_project_id: u.default_project_id, email: u.email, password_expires_at: u.password_expires_at },
          { name: 'alice', domain_id: 'default', enabled: true, default_project_id: pid, email: 'a@example.org', password_expires_at: null },
        );
        assert.equal((await call('POST', '/v3/users', { token: adminToken, body: { user: { name: 'alice' } } })).status, 409);

        const list = await call('GET', '/v3/users?name=alice', { token: adminToken });
        assert.deepEqual(list.body.users.map((x: Body) => x.id), [u.id]);
        assert.equal((await call('GET', `/v3/users/${u.id}`, { token: adminToken })).body.user.name, 'alice');

        const grant = await call('PUT', `/v3/projects/${pid}/users/${u.id}/roles/${await roleId('member')}`, { token: adminToken });
        assert.equal(grant.status, 204);
        const before = await identity.issueToken('alice', 'pw-alice', 'users-p');
        // Without a scope, Keystone scopes to the default project.
        const implicit = await issue({ name: 'alice', domain: def }, 'pw-alice');
        assert.equal(implicit.body.token.project.id, pid);

        const upd = await call('PATCH', `/v3/users/${u.id}`, { token: adminToken, body: { user: { password: 'pw-alice-2', email: null } } });
        assert.equal(upd.status, 200);
        assert.equal('email' in upd.body.user, false);
        assert.equal(await identity.validateToken(before), null, 'a password change revokes the old tokens');
        assert.equal((await issue({ name: 'alice', domain: def }, 'pw-alice', { id: pid })).status, 401);
        assert.equal((await issue({ name: 'alice', domain: def }, 'pw-alice-2', { id: pid })).status, 201);

        const disabled = await call('PATCH', `/v3/users/${u.id}`, { token: adminToken, body: { user: { enabled: false } } });
        assert.equal(disabled.body.user.enabled, false);
        assert.equal((await issue({ name: 'alice', domain: def }, 'pw-alice-2', { id: pid })).status, 401);

        assert.equal((await call('DELETE', `/v3/users/${u.id}`, { token: adminToken })).status, 204);
        assert.equal((await call('GET', `/v3/users/${u.id}`, { token: adminToken })).status, 404);
        assert.equal((await call('DELETE', `/v3/users/${u.id}`, { token: adminToken })).status, 404);
      });

      it('lets a user change its own password with the original one', async () => {
        const { userId } = await identity.ensureUser({ project: 'pw-p', user: 'pw-u', password: 'old-pw', role: 'reader' });
        const token = await identity.issueToken('pw-u', 'old-pw', 'pw-p');
        const wrong = await call('POST', `/v3/users/${userId}/password`, { token, body: { user: { password: 'new-pw', original_password: 'nope' } } });
        assert.equal(wrong.status, 401);
        const ok = await call('POST', `/v3/users/${userId}/password`, { token, body: { user: { password: 'new-pw', original_password: 'old-pw' } } });
        assert.equal(ok.status, 204);
        assert.ok(await identity.validateToken(await identity.issueToken('pw-u', 'new-pw', 'pw-p')));
      });
    });

    async function roleId(name: string): Promise<string> {
      const res = await call('GET', `/v3/roles?name=${name}`, { token: adminToken });
      return res.body.roles[0].id;
    }

    describe('role assignments', () => {
      it('grants member, which yields member and reader in the token, and revokes it', async () => {
        const { projectId, userId } = await identity.ensureUser({ project: 'grant-p', user: 'grant-u', password: 'pw-grant', role: 'reader' });
        const member = await roleId('member');
        const reader = await roleId('reader');
        const grantUrl = `/v3/projects/${projectId}/users/${userId}/roles/${member}`;
        assert.equal((await call('PUT', grantUrl, { token: adminToken })).status, 204);
        assert.equal((await call('PUT', grantUrl, { token: adminToken })).status, 204, 'granting twice is fine');
        assert.equal((await call('HEAD', grantUrl, { token: adminToken })).status, 204);
        // Remove the reader grant ensureUser made, so member alone is left.
        assert.equal((await call('DELETE', `/v3/projects/${projectId}/users/${userId}/roles/${reader}`, { token: adminToken })).status, 204);

        const token = await issue({ name: 'grant-u', domain: def }, 'pw-grant', { id: projectId });
        assert.deepEqual(token.body.token.roles.map((r: Body) => r.name).sort(), ['member', 'reader']);
        const ctx = (await identity.validateToken(token.headers.get('x-subject-token')!))!;
        assert.deepEqual([...ctx.roles].sort(), ['member', 'reader']);
        assert.equal(ctx.isAdmin, false);
        assert.equal(ctx.canWrite, true);

        const direct = await call('GET', `/v3/projects/${projectId}/users/${userId}/roles`, { token: adminToken });
        assert.deepEqual(direct.body.roles.map((r: Body) => r.name), ['member']);
        const assignments = await call('GET', `/v3/role_assignments?user.id=${userId}&scope.project.id=${projectId}`, { token: adminToken });
        assert.deepEqual(assignments.body.role_assignments, [{
          role: { id: member }, user: { id: userId }, scope: { project: { id: projectId } },
          links: { assignment: `${base}${grantUrl}` },
        }]);
        const effective = await call('GET', `/v3/role_assignments?user.id=${userId}&effective&include_names`, { token: adminToken });
        assert.deepEqual(effective.body.role_assignments.map((a: Body) => a.role.name).sort(), ['member', 'reader']);
        assert.equal(effective.body.role_assignments[0].user.name, 'grant-u');

        assert.equal((await call('DELETE', grantUrl, { token: adminToken })).status, 204);
        assert.equal((await call('HEAD', grantUrl, { token: adminToken })).status, 404);
        assert.equal((await call('DELETE', grantUrl, { token: adminToken })).status, 404);
        // No role left on the project: the token is no longer valid.
        assert.equal(await identity.validateToken(token.headers.get('x-subject-token')!), null);
      });

      it('404s grants of unknown users, projects or roles', async () => {
        const ctx = (await identity.validateToken(adminToken))!;
        const member = await roleId('member');
        const zero = '0'.repeat(32);
        for (const [p, u, r, kind] of [[zero, ctx.userId, member, 'project'], [ctx.projectId, zero, member, 'user'], [ctx.projectId, ctx.userId, zero, 'role']]) {
          const res = await call('PUT', `/v3/projects/${p}/users/${u}/roles/${r}`, { token: adminToken });
          assert.equal(res.status, 404);
          assert.equal(res.body.error.message, `Could not find ${kind}: ${zero}.`);
        }
      });
    });

    describe('policy', () => {
      it('forbids a reader (and a member) to create projects, with the Keystone message', async () => {
        for (const role of ['reader', 'member'] as const) {
          await identity.ensureUser({ project: `pol-${role}`, user: `pol-${role}`, password: 'pw-pol', role });
          const token = await identity.issueToken(`pol-${role}`, 'pw-pol', `pol-${role}`);
          const res = await call('POST', '/v3/projects', { token, body: { project: { name: `by-${role}` } } });
          assert.equal(res.status, 403);
          assert.deepEqual(res.body, {
            error: { code: 403, title: 'Forbidden', message: 'You are not authorized to perform the requested action: identity:create_project.' },
          });
        }
        const readerCtx = await identity.validateToken(await identity.issueToken('pol-reader', 'pw-pol', 'pol-reader'));
        assert.equal(readerCtx?.canWrite, false);
      });

      it('lets a user read itself and its projects, nothing else', async () => {
        const { userId, projectId } = await identity.ensureUser({ project: 'pol-own', user: 'pol-own', password: 'pw-own', role: 'member' });
        const token = await identity.issueToken('pol-own', 'pw-own', 'pol-own');
        const admin = (await identity.validateToken(adminToken))!;
        assert.equal((await call('GET', `/v3/users/${userId}`, { token })).status, 200);
        assert.equal((await call('GET', `/v3/users/${admin.userId}`, { token })).status, 403);
        assert.equal((await call('GET', `/v3/projects/${projectId}`, { token })).status, 200);
        assert.equal((await call('GET', `/v3/projects/${admin.projectId}`, { token })).status, 403);
        assert.equal((await call('GET', '/v3/projects', { token })).status, 403);
        assert.equal((await call('GET', '/v3/users', { token })).status, 403);
        const mine = await call('GET', `/v3/users/${userId}/projects`, { token });
        assert.deepEqual(mine.body.projects.map((p: Body) => p.id), [projectId]);
        assert.equal((await call('GET', `/v3/users/${admin.userId}/projects`, { token })).status, 403);
        const auth = await call('GET', '/v3/auth/projects', { token });
        assert.deepEqual(auth.body.projects.map((p: Body) => p.id), [projectId]);
        assert.equal((await call('GET', `/v3/role_assignments?user.id=${userId}`, { token })).status, 200);
        assert.equal((await call('GET', '/v3/role_assignments', { token })).status, 403);
        for (const [m, u] of [['PATCH', `/v3/users/${userId}`], ['DELETE', `/v3/projects/${projectId}`], ['PUT', `/v3/projects/${projectId}/users/${userId}/roles/${await roleId('admin')}`]]) {
          assert.equal((await call(m, u, { token, body: m === 'PATCH' ? { user: { name: 'evil' } } : undefined })).status, 403, `${m} ${u}`);
        }
      });

      it('answers unknown paths and malformed URLs in Keystone format', async () => {
        const res = await call('GET', '/v3/nothing-here', { token: adminToken });
        assert.equal(res.status, 404);
        assert.deepEqual(res.body, { error: { code: 404, message: 'The resource could not be found.', title: 'Not Found' } });
        const badUrl = await call('GET', '/v3/projects/%zz', { token: adminToken });
        assert.equal(badUrl.status, 400);
        assert.equal(badUrl.body.error.title, 'Bad Request');
      });
    });

    describe('clouds.yaml and the OpenStack CLI', () => {
      let dir: string;
      before(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nucleon-clouds-'));
      });
      after(() => fs.rmSync(dir, { recursive: true, force: true }));

      it('writes clouds.yaml 0600, keeps the password when given none, writes nothing without one', () => {
        const empty = path.join(dir, 'empty');
        assert.equal(writeCloudsYaml(empty, endpoints, null), null);
        assert.equal(fs.existsSync(path.join(empty, 'clouds.yaml')), false);

        const file = writeCloudsYaml(dir, { ...endpoints, identityUrl: 'http://127.0.0.1:1' }, 'p"w: #\'x');
        assert.equal(file, path.join(dir, 'clouds.yaml'));
        assert.equal(fs.statSync(file!).mode & 0o777, 0o600);
        assert.equal(writeCloudsYaml(dir, endpoints, null), file);
        const text = fs.readFileSync(file!, 'utf8');
        assert.match(text, new RegExp(`auth_url: "${base}/v3"`));
        assert.match(text, /password: "p\\"w: #'x"/);
        assert.equal(fs.statSync(file!).mode & 0o777, 0o600);
        writeCloudsYaml(dir, endpoints, ADMIN_PASSWORD);
      });

      it('works with the real CLI: token issue, project create, user create, role add, project list', { skip: !cliAvailable && 'openstack CLI not installed' }, async () => {
        const clouds = writeCloudsYaml(dir, endpoints, ADMIN_PASSWORD)!;
        const issued = JSON.parse(await openstack(clouds, ['token', 'issue', '-f', 'json']));
        assert.ok(issued.id && issued.expires && issued.project_id && issued.user_id);
        const ctx = await identity.validateToken(issued.id);
        assert.equal(ctx?.projectName, 'admin');

        const project = JSON.parse(await openstack(clouds, ['project', 'create', 'cli-proj', '-f', 'json']));
        assert.equal(project.name, 'cli-proj');
        const user = JSON.parse(await openstack(clouds, ['user', 'create', '--password', 'cli-pw', '--project', 'cli-proj', 'cli-user', '-f', 'json']));
        assert.equal(user.name, 'cli-user');
        assert.equal(user.default_project_id, project.id);
        await openstack(clouds, ['role', 'add', '--user', 'cli-user', '--project', 'cli-proj', 'member']);
        const list = JSON.parse(await openstack(clouds, ['project', 'list', '-f', 'json'])) as { ID: string; Name: string }[];
        assert.ok(list.some((p) => p.ID === project.id && p.Name === 'cli-proj'));

        const token = await identity.issueToken('cli-user', 'cli-pw', 'cli-proj');
        const userCtx = (await identity.validateToken(token))!;
        assert.deepEqual([...userCtx.roles].sort(), ['member', 'reader']);
        assert.equal(userCtx.projectId, project.id);
      });
    });
  });
});
