// Pure parts of the identity service: no store, no HTTP.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildRoleGraph, effectiveRoles } from '../src/identity/keystone/roles.ts';
import { ExpiringCache } from '../src/identity/keystone/cache.ts';
import { readCloudPassword, renderCloudsYaml } from '../src/identity/clouds-yaml.ts';
import { hashPassword, hashToken, newId, newTokenSecret, verifyPassword, wireTime } from '../src/identity/keystone/secrets.ts';
import { allowed } from '../src/identity/keystone/access.ts';
import { parseAuthRequest } from '../src/identity/keystone/input.ts';
import { ValidationError, Unauthorized } from '../src/identity/keystone/errors.ts';
import { expandAssignments } from '../src/identity/keystone/routes.ts';
import { toAuthContext } from '../src/identity/keystone/tokens.ts';
import type { TokenInfo } from '../src/identity/keystone/model.ts';

const roles = [{ id: 'a', name: 'admin' }, { id: 'm', name: 'member' }, { id: 'r', name: 'reader' }, { id: 'x', name: 'extra' }];
const graph = buildRoleGraph(roles, [
  { prior_role_id: 'a', implied_role_id: 'm' },
  { prior_role_id: 'm', implied_role_id: 'r' },
  // A cycle must not loop forever.
  { prior_role_id: 'r', implied_role_id: 'm' },
]);

function info(roleNames: string[], project = true): TokenInfo {
  return {
    tokenHash: 'h', user: { id: 'u1', name: 'u', domainId: 'default', domainName: 'Default' },
    project: project ? { id: 'p1', name: 'p', domainId: 'default', domainName: 'Default' } : null,
    roles: roleNames.map((n) => ({ id: n, name: n })), methods: ['password'], auditId: 'a',
    issuedAt: new Date(0), expiresAt: new Date(3_600_000),
  };
}

describe('identity units', () => {
  it('computes effective roles through implications, cycles included', () => {
    assert.deepEqual(effectiveRoles(graph, ['a']).map((r) => r.name), ['admin', 'member', 'reader']);
    assert.deepEqual(effectiveRoles(graph, ['m']).map((r) => r.name), ['member', 'reader']);
    assert.deepEqual(effectiveRoles(graph, ['r']).map((r) => r.name), ['member', 'reader']);
    assert.deepEqual(effectiveRoles(graph, ['x', 'unknown']).map((r) => r.name), ['extra']);
    assert.deepEqual(effectiveRoles(graph, []), []);
  });

  it('expands effective assignments once per role, direct grants first', () => {
    const rows = [{ user_id: 'u', project_id: 'p', role_id: 'a' }, { user_id: 'u', project_id: 'p', role_id: 'm' }];
    const implied = (id: string) => effectiveRoles(graph, [id]).map((r) => r.id).filter((x) => x !== id);
    const out = expandAssignments(rows, implied);
    assert.deepEqual(out.map((e) => [e.roleId, e.priorRoleId]), [['a', undefined], ['m', undefined], ['r', 'a']]);
  });

  it('expires cache entries and evicts the oldest when full', () => {
    const c = new ExpiringCache<number>(2);
    c.set('a', 1, 1000);
    c.set('b', 2, 1000);
    assert.equal(c.get('a', 999), 1);
    assert.equal(c.get('a', 1000), undefined);
    c.set('c', 3, 2000);
    c.set('d', 4, 2000);
    assert.equal(c.size, 2);
    assert.equal(c.get('b', 0), undefined);
    assert.equal(c.get('d', 0), 4);
  });

  it('hashes passwords with a random salt and verifies in constant time', async () => {
    const h1 = await hashPassword('s3cret');
    const h2 = await hashPassword('s3cret');
    assert.notEqual(h1, h2);
    assert.match(h1, /^scrypt\$\d+\$\d+\$\d+\$[\w-]+\$[\w-]+$/);
    assert.equal(await verifyPassword('s3cret', h1), true);
    assert.equal(await verifyPassword('s3cret!', h1), false);
    assert.equal(await verifyPassword('s3cret', null), false);
    assert.equal(await verifyPassword('s3cret', 'garbage'), false);
    assert.equal(await verifyPassword('s3cret', 'scrypt$99999999$8$1$AA$AA'), false);
  });

  it('makes url-safe token secrets, hex hashes, 32-hex ids and Keystone timestamps', () => {
    const t = newTokenSecret();
    assert.match(t, /^[A-Za-z0-9_-]{43}$/);
    assert.match(hashToken(t), /^[0-9a-f]{64}$/);
    assert.match(newId(), /^[0-9a-f]{32}$/);
    assert.equal(wireTime(new Date('2026-11-24T02:09:16.000Z')), '2026-11-24T02:09:16.000000Z');
    assert.equal(wireTime(new Date('2026-11-24T02:09:16.123Z')), '2026-11-24T02:09:16.123000Z');
  });

  it('round-trips awkward passwords through clouds.yaml', () => {
    const endpoints = { identityUrl: 'http://127.0.0.1:5000/', networkUrl: 'http://127.0.0.1:9696', region: 'RegionOne' };
    for (const pw of ['simple', 'with: colon', "quote'single", 'quote"double', 'hash # not comment', 'back\\slash', 'ünïcødé', ' spaced ']) {
      const text = renderCloudsYaml(endpoints, pw);
      assert.equal(readCloudPassword(text), pw);
      assert.match(text, /auth_url: "http:\/\/127\.0\.0\.1:5000\/v3"\n/);
    }
    assert.equal(readCloudPassword("clouds:\n  other:\n    auth:\n      password: x\n"), null);
    assert.equal(readCloudPassword("clouds:\n  nucleon:\n    auth:\n      password: 'it''s'\n"), "it's");
    assert.equal(readCloudPassword('clouds:\n  nucleon:\n    auth:\n      password: plain # comment\n'), 'plain');
  });

  it('applies identity policy: admin for administration, self for own things', () => {
    const admin = info(['admin', 'member', 'reader']);
    const member = info(['member', 'reader']);
    assert.equal(allowed('identity:create_project', admin), true);
    assert.equal(allowed('identity:create_project', member), false);
    assert.equal(allowed('identity:get_user', member, { userId: 'u1' }), true);
    assert.equal(allowed('identity:get_user', member, { userId: 'u2' }), false);
    assert.equal(allowed('identity:get_user', member), false);
    assert.equal(allowed('identity:get_project', member, { callerHasRoleOnProject: true }), true);
    assert.equal(allowed('identity:get_project', member, { callerHasRoleOnProject: false }), false);
    assert.equal(allowed('identity:get_domain', member, { domainId: 'default' }), true);
    assert.equal(allowed('identity:get_domain', member, { domainId: 'other' }), false);
  });

  it('maps token info to the Networking API context', () => {
    const reader = toAuthContext(info(['reader']))!;
    assert.deepEqual([reader.isAdmin, reader.canWrite], [false, false]);
    const member = toAuthContext(info(['member', 'reader']))!;
    assert.deepEqual([member.isAdmin, member.canWrite, member.projectId], [false, true, 'p1']);
    const admin = toAuthContext(info(['admin', 'member', 'reader']))!;
    assert.deepEqual([admin.isAdmin, admin.canWrite], [true, true]);
    assert.equal(toAuthContext(info([], false)), null);
  });

  it('parses auth requests and rejects malformed ones with typed errors', () => {
    const ok = parseAuthRequest({
      auth: {
        identity: { methods: ['password'], password: { user: { name: 'u', domain: { name: 'Default' }, password: 'p' } } },
        scope: { project: { id: 'p1' } },
      },
    });
    assert.deepEqual(ok.password, { user: { name: 'u', domain: { id: undefined, name: 'Default' } }, password: 'p' });
    assert.deepEqual(ok.scope, { kind: 'project', project: { id: 'p1' } });
    assert.deepEqual(parseAuthRequest({ auth: { identity: { methods: ['token'], token: { id: 't' } } } }).scope, { kind: 'default' });
    assert.throws(() => parseAuthRequest(undefined), ValidationError);
    assert.throws(() => parseAuthRequest({ auth: { identity: { methods: [] } } }), ValidationError);
    assert.throws(() => parseAuthRequest({ auth: { identity: { methods: ['password'], password: { user: { id: 'u' } } } } }), ValidationError);
    assert.throws(() => parseAuthRequest({ auth: { identity: { methods: ['saml2'] } } }), Unauthorized);
  });
});
