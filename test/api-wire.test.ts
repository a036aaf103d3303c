// The Networking API as a client sees it: a whole Nucleon (identity + API,
// startNucleon) on real HTTP, with real tokens, on SQLite and on PostgreSQL.
// Expected bodies, headers and attribute sets come from a real Neutron's
// answers (shared/reference/neutron-wire/*.json, copied in below so the suite
// stands alone); ids and times are compared by form, not value.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { forEachBackend } from './support/backends.ts';
import { startTestCloud, type ApiClient, type ApiResponse, type Json, type Principal, type TestCloud } from './support/server.ts';

// ---- what a real Neutron answers (from the wire samples) ----

/** network-create-201.json: a project member's view (no provider:* attributes). */
const NETWORK_KEYS = [
  'admin_state_up', 'availability_zone_hints', 'availability_zones', 'created_at', 'description', 'id',
  'ipv4_address_scope', 'ipv6_address_scope', 'is_default', 'mtu', 'name', 'port_security_enabled', 'project_id',
  'revision_number', 'router:external', 'shared', 'status', 'subnets', 'tags', 'tenant_id', 'updated_at',
];
/** network-show-200.json has the same set less is_default (a Neutron quirk either way is fine). */
const NETWORK_SHOW_OPTIONAL = ['is_default'];
/** subnet-create-201.json */
const SUBNET_KEYS = [
  'allocation_pools', 'cidr', 'created_at', 'description', 'dns_nameservers', 'enable_dhcp', 'gateway_ip',
  'host_routes', 'id', 'ip_version', 'ipv6_address_mode', 'ipv6_ra_mode', 'name', 'network_id', 'project_id',
  'revision_number', 'service_types', 'subnetpool_id', 'tags', 'tenant_id', 'updated_at',
];
/** port-create-201.json, port-show-200.json, port-update-200.json (a member's view) */
const PORT_KEYS = [
  'admin_state_up', 'allowed_address_pairs', 'binding:vnic_type', 'created_at', 'description', 'device_id',
  'device_owner', 'extra_dhcp_opts', 'fixed_ips', 'id', 'mac_address', 'name', 'network_id', 'port_security_enabled',
  'project_id', 'revision_number', 'security_groups', 'status', 'tags', 'tenant_id', 'updated_at',
];
/** neutron-extensions-list.json: the attributes of one extension */
const EXTENSION_KEYS = ['alias', 'description', 'links', 'name', 'updated'];
/** neutron-401-no-token.json */
const UNAUTHORIZED_BODY = { error: { code: 401, title: 'Unauthorized', message: 'The request you have made requires authentication.' } };
/** bad-url-404.json */
const NOT_FOUND_BODY = { NeutronError: { type: 'HTTPNotFound', message: 'The resource could not be found.', detail: '' } };
/** network-create-bad-json-400.json */
const BAD_JSON_BODY = { NeutronError: { type: 'HTTPBadRequest', message: 'Body contains invalid data', detail: '' } };
/** network-create-unknown-attr-400.json */
const UNKNOWN_ATTR_BODY = { NeutronError: { type: 'HTTPBadRequest', message: "Unrecognized attribute(s) 'foo'", detail: '' } };
/** network-update-shared-not-owner-403.json */
const SHARED_NOT_OWNER_BODY = { NeutronError: { type: 'PolicyNotAuthorized', message: 'rule:update_network is disallowed by policy', detail: '' } };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const REQUEST_ID = /^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
const MISSING_ID = '0b6b5d1c-9e5f-4f4e-9a4a-000000000000';

// ---- helpers ----

const sorted = (xs: Iterable<string>) => [...xs].sort();

function assertKeys(item: Json, expected: string[], optional: string[] = [], what = 'attributes') {
  const got = Object.keys(item).filter((k) => !optional.includes(k));
  assert.deepEqual(sorted(got), sorted(expected.filter((k) => !optional.includes(k))), `${what}: ${JSON.stringify(item)}`);
}

function assertJson(r: ApiResponse) {
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/, `content-type of ${r.status} ${r.text.slice(0, 200)}`);
}

/** A Neutron error answer: status, the NeutronError envelope, its type and message. */
function assertError(r: ApiResponse, status: number, type: string, message?: string | RegExp) {
  assert.equal(r.status, status, `expected ${status} ${type}, got ${r.status}: ${r.text.slice(0, 500)}`);
  assertJson(r);
  assert.deepEqual(Object.keys(r.body ?? {}), ['NeutronError'], r.text);
  assert.deepEqual(sorted(Object.keys(r.body.NeutronError)), ['detail', 'message', 'type'], r.text);
  assert.equal(r.body.NeutronError.type, type, r.text);
  if (typeof message === 'string') assert.equal(r.body.NeutronError.message, message);
  else if (message) assert.match(r.body.NeutronError.message, message);
  assert.equal(r.body.NeutronError.detail, '');
}

function assertStatus(r: ApiResponse, status: number) {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.text.slice(0, 500)}`);
}

/** Prometheus text format → samples. */
function parseMetrics(text: string): Array<{ name: string; labels: Record<string, string>; value: number }> {
  const out = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

function metricValue(text: string, name: string, labels: Record<string, string>): number {
  return parseMetrics(text)
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

/** The EUI-64 SLAAC address of `mac` in a /64 `prefix` ("fd00:1::"), as Neutron computes it. */
function eui64(prefix: string, mac: string): string {
  const b = mac.split(':').map((h) => parseInt(h, 16));
  b[0] ^= 0x02;
  const groups = [(b[0] << 8) | b[1], (b[2] << 8) | 0xff, 0xfe00 | b[3], (b[4] << 8) | b[5]];
  return `${prefix}${groups.map((g) => g.toString(16)).join(':')}`;
}

forEachBackend((backend) => {
  describe(`Networking API over HTTP on ${backend.name}`, () => {
    let cloud: TestCloud;
    let admin: ApiClient;
    let anonymous: ApiClient;
    let alice: ApiClient;
    let aliceReader: ApiClient;
    let bob: ApiClient;
    let aliceP: Principal;
    let bobP: Principal;
    /** Every answer any client here received, for the request-id check at the end. */
    const answers: Array<{ what: string; r: ApiResponse }> = [];

    const recorded = (c: ApiClient): ApiClient => {
      const request = async (method: string, p: string, body?: unknown, headers?: Record<string, string>) => {
        const r = await c.request(method, p, body, headers);
        answers.push({ what: `${method} ${p}`, r });
        return r;
      };
      return {
        request,
        get: (p, b, h) => request('GET', p, b, h),
        post: (p, b, h) => request('POST', p, b, h),
        put: (p, b, h) => request('PUT', p, b, h),
        del: (p, b, h) => request('DELETE', p, b, h),
      };
    };

    /** Everything the admin sees: every network (id, name, revision), for "nothing was written" checks. */
    const allNetworks = async () => {
      const r = await admin.get('/v2.0/networks?fields=id&fields=name&fields=revision_number&fields=tags');
      assertStatus(r, 200);
      return (r.body.networks as Json[]).map((n) => JSON.stringify(n)).sort();
    };

    const createNetwork = async (client: ApiClient, network: Json): Promise<Json> => {
      const r = await client.post('/v2.0/networks', { network });
      assertStatus(r, 201);
      return r.body.network;
    };

    before(async () => {
      cloud = await startTestCloud(backend.name);
      admin = recorded(cloud.api(cloud.adminToken));
      anonymous = recorded(cloud.api());
      aliceP = await cloud.principal('alice', 'member');
      bobP = await cloud.principal('bob', 'member');
      alice = recorded(cloud.api(aliceP.token));
      bob = recorded(cloud.api(bobP.token));
      aliceReader = recorded(cloud.api(await cloud.tokenFor('alice', 'reader')));
    });
    after(() => cloud?.close());

    describe('discovery', () => {
      it('GET / lists version v2.0 with a self link to this server (neutron-versions-root.json)', async () => {
        const r = await anonymous.get('/');
        assertStatus(r, 200);
        assertJson(r);
        assert.deepEqual(r.body, {
          versions: [{ id: 'v2.0', status: 'CURRENT', links: [{ rel: 'self', href: `${cloud.networkUrl}/v2.0/` }] }],
        });
      });

      it('GET /v2.0 lists the core collections with self links, and each of them answers (neutron-v2.0-root.json)', async () => {
        for (const p of ['/v2.0', '/v2.0/']) {
          const r = await alice.get(p);
          assertStatus(r, 200);
          assertJson(r);
          assert.deepEqual(Object.keys(r.body), ['resources']);
          for (const res of r.body.resources) {
            assert.deepEqual(sorted(Object.keys(res)), ['collection', 'links', 'name']);
            assert.deepEqual(res.links, [{ rel: 'self', href: `${cloud.networkUrl}/v2.0/${res.collection}` }]);
          }
          const names = r.body.resources.map((x: Json) => `${x.name}:${x.collection}`);
          for (const core of ['network:networks', 'subnet:subnets', 'port:ports']) assert.ok(names.includes(core), `${core} in ${names}`);
        }
        // What is advertised is served.
        const { body } = await alice.get('/v2.0');
        for (const res of body.resources) {
          const l = await alice.get(res.links[0].href);
          assertStatus(l, 200);
          assert.ok(Array.isArray(l.body[res.collection]), `${res.collection}: ${l.text.slice(0, 200)}`);
        }
      });

      it('GET /v2.0/extensions lists extensions as Neutron does, by real Neutron aliases', async () => {
        const r = await alice.get('/v2.0/extensions');
        assertStatus(r, 200);
        assertJson(r);
        assert.deepEqual(Object.keys(r.body), ['extensions']);
        const aliases = r.body.extensions.map((e: Json) => e.alias);
        assert.equal(new Set(aliases).size, aliases.length, 'aliases are unique');
        for (const e of r.body.extensions) {
          assertKeys(e, EXTENSION_KEYS, [], 'extension');
          assert.deepEqual(e.links, []);
          assert.equal(typeof e.name, 'string');
          // Neutron's own data has dates like 2014-06-1T10:00:00-00:00 (sic); we list them as Neutron does.
          assert.match(e.updated, /^\d{4}-\d\d-\d{1,2}T/);
        }
        // What the features tested in this file rely on (clients check these before using them).
        for (const a of ['pagination', 'sorting', 'standard-attr-tag', 'revision-if-match', 'project-id', 'net-mtu', 'standard-attr-description', 'standard-attr-timestamp', 'standard-attr-revisions']) {
          assert.ok(aliases.includes(a), `extension ${a} listed`);
        }
        const one = await alice.get('/v2.0/extensions/pagination');
        assertStatus(one, 200);
        assert.deepEqual(one.body, { extension: r.body.extensions.find((e: Json) => e.alias === 'pagination') });
        assert.deepEqual((await alice.get('/v2.0/extensions/no-such-extension')).body, NOT_FOUND_BODY);
      });
    });

    describe('authentication and request errors', () => {
      it('answers 401 with keystonemiddleware\'s body and Www-Authenticate without a token or with a bad one (neutron-401-no-token.json)', async () => {
        const before = await allNetworks();
        const bogus = recorded(cloud.api('gAAAAABnot-a-real-token'));
        for (const [who, client] of [['no token', anonymous], ['bad token', bogus]] as const) {
          for (const [method, p, body] of [
            ['GET', '/v2.0/networks', undefined],
            ['GET', '/v2.0', undefined],
            ['POST', '/v2.0/networks', { network: { name: 'sneaky' } }],
            ['DELETE', `/v2.0/networks/${MISSING_ID}`, undefined],
          ] as const) {
            const r = await client.request(method, p, body);
            assert.equal(r.status, 401, `${who} ${method} ${p}: ${r.status} ${r.text}`);
            assertJson(r);
            assert.deepEqual(r.body, UNAUTHORIZED_BODY);
            assert.equal(r.headers.get('www-authenticate'), `Keystone uri="${cloud.identityUrl}"`);
          }
        }
        assert.deepEqual(await allNetworks(), before, 'nothing was created');
      });

      it('answers an unknown URL with 404 HTTPNotFound (bad-url-404.json)', async () => {
        for (const p of ['/v2.0/nosuchresource', '/v2.0/networks/x/y/z', '/v3/nonsense']) {
          const r = await alice.get(p);
          assertStatus(r, 404);
          assertJson(r);
          assert.deepEqual(r.body, NOT_FOUND_BODY, p);
        }
      });

      it('rejects malformed JSON with 400 "Body contains invalid data" (network-create-bad-json-400.json)', async () => {
        for (const raw of ['{"network": {', '{network: {}}', 'not json at all']) {
          const r = await alice.post('/v2.0/networks', raw);
          assertStatus(r, 400);
          assert.deepEqual(r.body, BAD_JSON_BODY, raw);
        }
      });

      it('rejects unknown attributes with 400 "Unrecognized attribute(s)" (network-create-unknown-attr-400.json)', async () => {
        assert.deepEqual((await alice.post('/v2.0/networks', { network: { foo: 1 } })).body, UNKNOWN_ATTR_BODY);
        const n = await createNetwork(alice, { name: 'attr-target' });
        const r = await alice.put(`/v2.0/networks/${n.id}`, { network: { foo: 1 } });
        assertError(r, 400, 'HTTPBadRequest', "Unrecognized attribute(s) 'foo'");
        const ro = await alice.put(`/v2.0/networks/${n.id}`, { network: { id: MISSING_ID } });
        assertError(ro, 400, 'HTTPBadRequest', /id/);
        assertStatus(await alice.del(`/v2.0/networks/${n.id}`), 204);
      });

      it('rejects values of the wrong type with 400 and Neutron\'s "Invalid input for X. Reason: ..." message', async () => {
        const cases: Array<[Json, string]> = [
          [{ admin_state_up: 'maybe' }, "Invalid input for admin_state_up. Reason: 'maybe' cannot be converted to boolean."],
          [{ mtu: 'big' }, "Invalid input for mtu. Reason: 'big' is not an integer."],
          [{ name: 42 }, "Invalid input for name. Reason: '42' is not a valid string."],
          [{ name: 'x'.repeat(256) }, `Invalid input for name. Reason: '${'x'.repeat(256)}' exceeds maximum length of 255.`],
        ];
        for (const [network, message] of cases) {
          assertError(await alice.post('/v2.0/networks', { network }), 400, 'HTTPBadRequest', message);
        }
        const wrongList = await alice.post('/v2.0/networks', { network: { availability_zone_hints: 'az1' } });
        assertError(wrongList, 400, 'HTTPBadRequest', /^Invalid input for availability_zone_hints\. Reason: /);
      });

      it('rejects bodies that are not the resource object with 400', async () => {
        const bodies: unknown[] = ['[]', '"network"', '42', 'null', '', { network: 'x' }, { network: [] }, { network: null },
          { networks: {} }, { networks: [] }, { networks: ['x'] }, { port: { name: 'x' } }, {}];
        for (const b of bodies) {
          const r = await alice.post('/v2.0/networks', b);
          assertError(r, 400, 'HTTPBadRequest');
        }
        const n = await createNetwork(alice, { name: 'body-target' });
        for (const b of ['[]', '', { network: 'x' }, {}]) {
          assertError(await alice.put(`/v2.0/networks/${n.id}`, b), 400, 'HTTPBadRequest');
        }
        assertStatus(await alice.del(`/v2.0/networks/${n.id}`), 204);
      });

      it('rejects a body over 1 MiB with 400, never 500, and keeps serving', async () => {
        const huge = `{"network": {"name": "${'x'.repeat(1024 * 1024 + 16)}"}}`;
        const r = await alice.post('/v2.0/networks', huge);
        assertError(r, 400, 'HTTPBadRequest');
        const bulk = JSON.stringify({ networks: Array.from({ length: 6000 }, (_, i) => ({ name: `n${i}`, description: 'd'.repeat(200) })) });
        assert.ok(bulk.length > 1024 * 1024);
        assertError(await alice.post('/v2.0/networks', bulk), 400, 'HTTPBadRequest');
        assertStatus(await alice.get('/v2.0/networks'), 200);
      });

      it('wrote nothing for any of the rejected requests above', async () => {
        const r = await admin.get('/v2.0/networks');
        assertStatus(r, 200);
        assert.deepEqual(r.body.networks, [], 'no network was left behind');
      });
    });

    describe('networks', () => {
      it('creates, shows, updates and deletes a network with Neutron\'s attributes (network-create-201.json)', async () => {
        const c = await alice.post('/v2.0/networks', { network: { name: 'wire-net' } });
        assertStatus(c, 201);
        assertJson(c);
        assert.deepEqual(Object.keys(c.body), ['network']);
        const n = c.body.network;
        assertKeys(n, NETWORK_KEYS);
        assert.match(n.id, UUID);
        assert.match(n.created_at, TIMESTAMP);
        assert.match(n.updated_at, TIMESTAMP);
        assert.deepEqual({ ...n, id: '', created_at: '', updated_at: '' }, {
          id: '', name: 'wire-net', tenant_id: aliceP.projectId, project_id: aliceP.projectId,
          admin_state_up: true, mtu: 1450, status: 'ACTIVE', subnets: [], shared: false,
          port_security_enabled: true, 'router:external': false, is_default: false,
          availability_zone_hints: [], availability_zones: [], ipv4_address_scope: null, ipv6_address_scope: null,
          description: '', tags: [], created_at: '', updated_at: '', revision_number: 1,
        });

        const s = await alice.get(`/v2.0/networks/${n.id}`);
        assertStatus(s, 200);
        assertKeys(s.body.network, NETWORK_KEYS, NETWORK_SHOW_OPTIONAL);
        for (const k of NETWORK_KEYS) if (k in s.body.network) assert.deepEqual(s.body.network[k], n[k], k);

        const l = await alice.get('/v2.0/networks');
        assertStatus(l, 200);
        assert.deepEqual(l.body.networks.map((x: Json) => x.id), [n.id]);
        assertKeys(l.body.networks[0], NETWORK_KEYS, NETWORK_SHOW_OPTIONAL);

        const u = await alice.put(`/v2.0/networks/${n.id}`, { network: { name: 'wire-net-renamed', description: 'the renamed one', mtu: 1400 } });
        assertStatus(u, 200);
        assertKeys(u.body.network, NETWORK_KEYS, NETWORK_SHOW_OPTIONAL);
        assert.equal(u.body.network.name, 'wire-net-renamed');
        assert.equal(u.body.network.description, 'the renamed one');
        assert.equal(u.body.network.mtu, 1400);
        assert.equal(u.body.network.revision_number, 2);
        assert.equal(u.body.network.created_at, n.created_at);
        assert.deepEqual((await alice.get(`/v2.0/networks/${n.id}`)).body.network, u.body.network);

        const d = await alice.del(`/v2.0/networks/${n.id}`);
        assertStatus(d, 204);
        assert.equal(d.text, '', 'a 204 has no body (network-delete-204.json)');
        assertError(await alice.get(`/v2.0/networks/${n.id}`), 404, 'NetworkNotFound', `Network ${n.id} could not be found.`);
        assertError(await alice.del(`/v2.0/networks/${n.id}`), 404, 'NetworkNotFound', `Network ${n.id} could not be found.`);
        assertError(await alice.get(`/v2.0/networks/${MISSING_ID}`), 404, 'NetworkNotFound', `Network ${MISSING_ID} could not be found.`);
      });

      it('hides another project\'s network: 404 NetworkNotFound on show, update, delete; absent from lists', async () => {
        const n = await createNetwork(alice, { name: 'alice-private' });
        const expected = { NeutronError: { type: 'NetworkNotFound', message: `Network ${n.id} could not be found.`, detail: '' } };
        const show = await bob.get(`/v2.0/networks/${n.id}`);
        assertStatus(show, 404);
        assert.deepEqual(show.body, expected, 'network-show-other-project-404.json');
        assert.deepEqual((await bob.put(`/v2.0/networks/${n.id}`, { network: { name: 'mine' } })).body, expected, 'network-update-other-project-404.json');
        assert.deepEqual((await bob.del(`/v2.0/networks/${n.id}`)).body, expected);
        assert.deepEqual((await bob.put(`/v2.0/networks/${n.id}/tags/x`)).body, expected);
        assert.deepEqual((await bob.get('/v2.0/networks')).body, { networks: [] });
        assert.deepEqual((await bob.get(`/v2.0/networks?id=${n.id}`)).body, { networks: [] });
        // The admin sees every project's networks, the owner's are untouched.
        const seen = await admin.get(`/v2.0/networks/${n.id}`);
        assertStatus(seen, 200);
        assert.equal(seen.body.network.name, 'alice-private');
        assert.equal(seen.body.network.revision_number, 1);
        assertStatus(await alice.del(`/v2.0/networks/${n.id}`), 204);
      });

      it('lets others see a shared network but not change it: 403 "rule:update_network is disallowed by policy"', async () => {
        const n = await createNetwork(admin, { name: 'shared-by-admin', shared: true });
        assert.equal(n.shared, true);
        const seen = await bob.get(`/v2.0/networks/${n.id}`);
        assertStatus(seen, 200);
        assert.equal(seen.body.network.shared, true);
        assert.ok(!('provider:network_type' in seen.body.network), 'provider attributes are admin-only');
        assert.ok((await bob.get('/v2.0/networks')).body.networks.some((x: Json) => x.id === n.id));
        const upd = await bob.put(`/v2.0/networks/${n.id}`, { network: { name: 'hijack' } });
        assertStatus(upd, 403);
        assert.deepEqual(upd.body, SHARED_NOT_OWNER_BODY, 'network-update-shared-not-owner-403.json');
        assertError(await bob.del(`/v2.0/networks/${n.id}`), 403, 'PolicyNotAuthorized', 'rule:delete_network is disallowed by policy');
        // A member may not share its own network either (shared is admin-only).
        assertError(await bob.post('/v2.0/networks', { network: { name: 's', shared: true } }), 403, 'PolicyNotAuthorized');
        const still = (await admin.get(`/v2.0/networks/${n.id}`)).body.network;
        assert.equal(still.name, 'shared-by-admin');
        assert.equal(still.revision_number, 1);
        assertStatus(await admin.del(`/v2.0/networks/${n.id}`), 204);
      });

      it('lets a reader list and show but not create, update or delete (403)', async () => {
        const n = await createNetwork(alice, { name: 'read-me' });
        const l = await aliceReader.get('/v2.0/networks');
        assertStatus(l, 200);
        assert.deepEqual(l.body.networks.map((x: Json) => x.id), [n.id]);
        assertStatus(await aliceReader.get(`/v2.0/networks/${n.id}`), 200);
        assertStatus(await aliceReader.get(`/v2.0/networks/${n.id}/tags`), 200);
        const before = await allNetworks();
        assertError(await aliceReader.post('/v2.0/networks', { network: { name: 'nope' } }), 403, 'PolicyNotAuthorized', 'rule:create_network is disallowed by policy');
        assertError(await aliceReader.post('/v2.0/networks', { networks: [{ name: 'nope1' }, { name: 'nope2' }] }), 403, 'PolicyNotAuthorized');
        assertError(await aliceReader.put(`/v2.0/networks/${n.id}`, { network: { name: 'nope' } }), 403, 'PolicyNotAuthorized', 'rule:update_network is disallowed by policy');
        assertError(await aliceReader.del(`/v2.0/networks/${n.id}`), 403, 'PolicyNotAuthorized', 'rule:delete_network is disallowed by policy');
        assertError(await aliceReader.put(`/v2.0/networks/${n.id}/tags/t`), 403, 'PolicyNotAuthorized');
        assert.deepEqual(await allNetworks(), before, 'the reader changed nothing');
        assertStatus(await alice.del(`/v2.0/networks/${n.id}`), 204);
      });

      it('honours If-Match: revision_number: 412 RevisionNumberConstraintFailed on a mismatch (revision-if-match-mismatch-412.json)', async () => {
        const n = await createNetwork(alice, { name: 'rev' });
        const u = await alice.put(`/v2.0/networks/${n.id}`, { network: { name: 'rev2' } }, { 'If-Match': 'revision_number=1' });
        assertStatus(u, 200);
        assert.equal(u.body.network.revision_number, 2);
        const stale = await alice.put(`/v2.0/networks/${n.id}`, { network: { name: 'x' } }, { 'If-Match': 'revision_number=999' });
        assertStatus(stale, 412);
        assert.deepEqual(stale.body, { NeutronError: { type: 'RevisionNumberConstraintFailed', message: 'Constrained to 999, but current revision is 2', detail: '' } });
        assertError(await alice.del(`/v2.0/networks/${n.id}`, undefined, { 'If-Match': 'revision_number=1' }), 412, 'RevisionNumberConstraintFailed', 'Constrained to 1, but current revision is 2');
        const now = (await alice.get(`/v2.0/networks/${n.id}`)).body.network;
        assert.equal(now.name, 'rev2');
        assert.equal(now.revision_number, 2);
        assertStatus(await alice.del(`/v2.0/networks/${n.id}`, undefined, { 'If-Match': 'revision_number=2' }), 204);
      });

      it('selects attributes with fields= on list and show (ports-list-filter-network.json\'s form)', async () => {
        const n = await createNetwork(alice, { name: 'fields' });
        const l = await alice.get(`/v2.0/networks?id=${n.id}&fields=id&fields=status&fields=subnets`);
        assertStatus(l, 200);
        assert.deepEqual(l.body, { networks: [{ id: n.id, status: 'ACTIVE', subnets: [] }] });
        const s = await alice.get(`/v2.0/networks/${n.id}?fields=name&fields=mtu`);
        assertStatus(s, 200);
        assert.deepEqual(s.body, { network: { name: 'fields', mtu: 1450 } });
        assertStatus(await alice.del(`/v2.0/networks/${n.id}`), 204);
      });

      it('filters by attribute values (several values of one attribute: any of them)', async () => {
        const a = await createNetwork(alice, { name: 'flt-a', description: 'one' });
        const b = await createNetwork(alice, { name: 'flt-b', description: 'two', admin_state_up: false });
        const names = async (q: string) => {
          const r = await alice.get(`/v2.0/networks?${q}`);
          assertStatus(r, 200);
          return sorted(r.body.networks.map((x: Json) => x.name));
        };
        assert.deepEqual(await names('name=flt-a'), ['flt-a']);
        assert.deepEqual(await names('name=flt-a&name=flt-b'), ['flt-a', 'flt-b']);
        assert.deepEqual(await names('admin_state_up=false'), ['flt-b']);
        assert.deepEqual(await names('admin_state_up=False'), ['flt-b']);
        assert.deepEqual(await names('name=flt-a&description=two'), []);
        assert.deepEqual(await names('name=nothing-like-this'), []);
        for (const n of [a, b]) assertStatus(await alice.del(`/v2.0/networks/${n.id}`), 204);
      });

      it('sorts with sort_key/sort_dir and pages with limit/marker, links exactly as Neutron builds them (ports-list-paginated-limit2.json)', async () => {
        const pager = recorded(cloud.api(await cloud.tokenFor('pager', 'member')));
        const made = await pager.post('/v2.0/networks', { networks: ['p3', 'p1', 'p5', 'p2', 'p4'].map((name) => ({ name, description: `d-${6 - Number(name[1])}` })) });
        assertStatus(made, 201);
        const byName = new Map<string, string>(made.body.networks.map((x: Json) => [x.name, x.id]));
        const id = (name: string) => byName.get(name)!;
        const base = `${cloud.networkUrl}/v2.0/networks`;

        const asc = await pager.get('/v2.0/networks?sort_key=name&sort_dir=asc');
        assert.deepEqual(asc.body.networks.map((x: Json) => x.name), ['p1', 'p2', 'p3', 'p4', 'p5']);
        assert.ok(!('networks_links' in asc.body), 'no links without a limit');
        const desc = await pager.get('/v2.0/networks?sort_key=name&sort_dir=desc');
        assert.deepEqual(desc.body.networks.map((x: Json) => x.name), ['p5', 'p4', 'p3', 'p2', 'p1']);
        const byDesc = await pager.get('/v2.0/networks?sort_key=description&sort_dir=asc&sort_key=name&sort_dir=asc');
        assert.deepEqual(byDesc.body.networks.map((x: Json) => x.name), ['p5', 'p4', 'p3', 'p2', 'p1']);
        assertError(await pager.get('/v2.0/networks?sort_key=name&sort_dir=sideways'), 400, 'HTTPBadRequest');
        assertError(await pager.get('/v2.0/networks?sort_key=no_such_attribute'), 400, 'HTTPBadRequest');
        assertError(await pager.get('/v2.0/networks?limit=many'), 400, 'HTTPBadRequest');

        // Page 1, exactly the sample's request.
        const p1 = await pager.get('/v2.0/networks?limit=2&sort_key=name&sort_dir=asc');
        assertStatus(p1, 200);
        assert.deepEqual(Object.keys(p1.body), ['networks', 'networks_links']);
        assert.deepEqual(p1.body.networks.map((x: Json) => x.name), ['p1', 'p2']);
        assertKeys(p1.body.networks[0], NETWORK_KEYS, NETWORK_SHOW_OPTIONAL);
        assert.deepEqual(p1.body.networks_links, [
          { rel: 'next', href: `${base}?limit=2&sort_key=name&sort_dir=asc&marker=${id('p2')}` },
          { rel: 'previous', href: `${base}?limit=2&sort_key=name&sort_dir=asc&marker=${id('p1')}&page_reverse=True` },
        ]);
        // Page 2 by following "next"; the marker moves to the end, the other parameters keep their order.
        const p2 = await pager.get(p1.body.networks_links[0].href);
        assert.deepEqual(p2.body.networks.map((x: Json) => x.name), ['p3', 'p4']);
        assert.deepEqual(p2.body.networks_links, [
          { rel: 'next', href: `${base}?limit=2&sort_key=name&sort_dir=asc&marker=${id('p4')}` },
          { rel: 'previous', href: `${base}?limit=2&sort_key=name&sort_dir=asc&marker=${id('p3')}&page_reverse=True` },
        ]);
        // Last page: fewer items than the limit, so no "next".
        const p3 = await pager.get(p2.body.networks_links[0].href);
        assert.deepEqual(p3.body.networks.map((x: Json) => x.name), ['p5']);
        assert.deepEqual(p3.body.networks_links, [
          { rel: 'previous', href: `${base}?limit=2&sort_key=name&sort_dir=asc&marker=${id('p5')}&page_reverse=True` },
        ]);
        // Back from page 2 with "previous": the page before it, still in ascending order.
        const back = await pager.get(p2.body.networks_links[1].href);
        assert.deepEqual(back.body.networks.map((x: Json) => x.name), ['p1', 'p2']);
        assert.deepEqual(back.body.networks_links, [
          { rel: 'next', href: `${base}?limit=2&sort_key=name&sort_dir=asc&marker=${id('p2')}` },
          { rel: 'previous', href: `${base}?limit=2&sort_key=name&sort_dir=asc&marker=${id('p1')}&page_reverse=True` },
        ]);
        // Another parameter order is kept as it came; descending order pages the other way.
        const d1 = await pager.get('/v2.0/networks?sort_dir=desc&sort_key=name&limit=3');
        assert.deepEqual(d1.body.networks.map((x: Json) => x.name), ['p5', 'p4', 'p3']);
        assert.deepEqual(d1.body.networks_links, [
          { rel: 'next', href: `${base}?sort_dir=desc&sort_key=name&limit=3&marker=${id('p3')}` },
          { rel: 'previous', href: `${base}?sort_dir=desc&sort_key=name&limit=3&marker=${id('p5')}&page_reverse=True` },
        ]);
        const d2 = await pager.get(d1.body.networks_links[0].href);
        assert.deepEqual(d2.body.networks.map((x: Json) => x.name), ['p2', 'p1']);
        // fields= and paging together: the links keep fields=, items hold only what was asked.
        const f = await pager.get('/v2.0/networks?fields=name&limit=1&sort_key=name');
        assert.deepEqual(f.body.networks, [{ name: 'p1' }]);
        assert.equal(f.body.networks_links[0].href, `${base}?fields=name&limit=1&sort_key=name&marker=${id('p1')}`);
        // A marker that does not exist.
        assertError(await pager.get(`/v2.0/networks?limit=2&marker=${MISSING_ID}`), 404, 'NetworkNotFound');
        for (const n of made.body.networks) assertStatus(await pager.del(`/v2.0/networks/${n.id}`), 204);
      });

      it('manages tags through the /tags sub-resource (PUT, PUT one → 201, GET, DELETE → 204, TagNotFound)', async () => {
        const n = await createNetwork(alice, { name: 'tagged' });
        const tags = `/v2.0/networks/${n.id}/tags`;
        const put = await alice.put(tags, { tags: ['red', 'blue'] });
        assertStatus(put, 200);
        assert.deepEqual(sorted(put.body.tags), ['blue', 'red']);
        const one = await alice.put(`${tags}/green`);
        assertStatus(one, 201);
        assert.equal(one.text, '');
        const again = await alice.put(`${tags}/green`);
        assert.ok(again.status === 201, `adding an existing tag is accepted (${again.status})`);
        const got = await alice.get(tags);
        assertStatus(got, 200);
        assert.deepEqual(Object.keys(got.body), ['tags']);
        assert.deepEqual(sorted(got.body.tags), ['blue', 'green', 'red']);
        assert.deepEqual(sorted((await alice.get(`/v2.0/networks/${n.id}`)).body.network.tags), ['blue', 'green', 'red']);
        const has = await alice.get(`${tags}/green`);
        assertStatus(has, 204);
        assertError(await alice.get(`${tags}/purple`), 404, 'TagNotFound', `Tag purple could not be found for network ${n.id}.`);
        const del = await alice.del(`${tags}/green`);
        assertStatus(del, 204);
        assert.equal(del.text, '');
        assertError(await alice.del(`${tags}/green`), 404, 'TagNotFound', `Tag green could not be found for network ${n.id}.`);
        assert.deepEqual(sorted((await alice.get(tags)).body.tags), ['blue', 'red']);
        assertError(await alice.put(tags, { tags: 'red' }), 400, 'HTTPBadRequest');
        assertError(await alice.put(tags, { nottags: [] }), 400, 'HTTPBadRequest');
        assertStatus(await alice.del(tags), 204);
        assert.deepEqual((await alice.get(tags)).body, { tags: [] });
        assertError(await alice.get(`/v2.0/networks/${MISSING_ID}/tags`), 404, 'NetworkNotFound');
        assertStatus(await alice.del(`/v2.0/networks/${n.id}`), 204);
      });

      it('filters by tags, tags-any, not-tags and not-tags-any', async () => {
        const mk = async (name: string, tags: string[]) => {
          const n = await createNetwork(alice, { name });
          if (tags.length) assertStatus(await alice.put(`/v2.0/networks/${n.id}/tags`, { tags }), 200);
          return n.id as string;
        };
        const ids = { both: await mk('t-both', ['red', 'blue']), red: await mk('t-red', ['red']), green: await mk('t-green', ['green']), none: await mk('t-none', []) };
        const names = async (q: string) => {
          const r = await alice.get(`/v2.0/networks?${q}`);
          assertStatus(r, 200);
          return sorted(r.body.networks.filter((x: Json) => Object.values(ids).includes(x.id)).map((x: Json) => x.name));
        };
        assert.deepEqual(await names('tags=red'), ['t-both', 't-red']);
        assert.deepEqual(await names('tags=red,blue'), ['t-both']);
        assert.deepEqual(await names('tags=red&tags=blue'), ['t-both']);
        assert.deepEqual(await names('tags-any=blue,green'), ['t-both', 't-green']);
        assert.deepEqual(await names('not-tags=red'), ['t-green', 't-none']);
        assert.deepEqual(await names('not-tags=red,blue'), ['t-green', 't-none', 't-red']);
        assert.deepEqual(await names('not-tags-any=red,green'), ['t-none']);
        assert.deepEqual(await names('tags=red&not-tags=blue'), ['t-red']);
        assert.deepEqual(await names('tags=purple'), []);
        for (const id of Object.values(ids)) assertStatus(await alice.del(`/v2.0/networks/${id}`), 204);
      });

      it('creates in bulk ({"networks": [...]}) all or nothing', async () => {
        const ok = await alice.post('/v2.0/networks', { networks: [{ name: 'bulk-1' }, { name: 'bulk-2', description: 'second' }] });
        assertStatus(ok, 201);
        assert.deepEqual(Object.keys(ok.body), ['networks']);
        assert.deepEqual(ok.body.networks.map((x: Json) => x.name), ['bulk-1', 'bulk-2']);
        for (const n of ok.body.networks) {
          assertKeys(n, NETWORK_KEYS);
          assert.equal(n.project_id, aliceP.projectId);
        }
        const before = await allNetworks();
        // Invalid item: nothing from the list is created.
        const bad = await alice.post('/v2.0/networks', { networks: [{ name: 'bulk-ok' }, { name: 'bulk-bad', foo: 1 }] });
        assert.deepEqual(bad.body, UNKNOWN_ATTR_BODY);
        // A conflict found only while writing the second item: the first is rolled back.
        const vlan = { 'provider:network_type': 'vlan', 'provider:physical_network': 'public', 'provider:segmentation_id': 3210 };
        const clash = await admin.post('/v2.0/networks', { networks: [{ name: 'vlan-a', ...vlan }, { name: 'vlan-b', ...vlan }] });
        assertError(clash, 409, 'VlanIdInUse', 'Unable to create the network. The VLAN 3210 on physical network public is in use.');
        // Over the quota half-way (default: 100 networks): none is created.
        const many = await alice.post('/v2.0/networks', { networks: Array.from({ length: 120 }, (_, i) => ({ name: `q${i}` })) });
        assertError(many, 409, 'OverQuota');
        assert.deepEqual(await allNetworks(), before, 'the rejected bulk requests wrote nothing');
        // The VLAN is still free.
        const v = await createNetwork(admin, { name: 'vlan-a', ...vlan });
        assert.equal(v['provider:segmentation_id'], 3210);
        for (const n of [...ok.body.networks, v]) assertStatus(await admin.del(`/v2.0/networks/${n.id}`), 204);
      });
    });

    describe('subnets and ports', () => {
      let net: Json;
      let subnet: Json;
      let port: Json;

      it('creates a subnet with Neutron\'s attributes (subnet-create-201.json)', async () => {
        net = await createNetwork(alice, { name: 'wire-net' });
        const r = await alice.post('/v2.0/subnets', { subnet: { name: 'wire-subnet', network_id: net.id, ip_version: 4, cidr: '10.50.0.0/24' } });
        assertStatus(r, 201);
        assert.deepEqual(Object.keys(r.body), ['subnet']);
        subnet = r.body.subnet;
        assertKeys(subnet, SUBNET_KEYS);
        assert.match(subnet.id, UUID);
        assert.match(subnet.created_at, TIMESTAMP);
        assert.equal(typeof subnet.revision_number, 'number');
        assert.deepEqual({ ...subnet, id: '', created_at: '', updated_at: '', revision_number: 0 }, {
          id: '', name: 'wire-subnet', tenant_id: aliceP.projectId, project_id: aliceP.projectId, network_id: net.id,
          ip_version: 4, subnetpool_id: null, enable_dhcp: true, ipv6_ra_mode: null, ipv6_address_mode: null,
          gateway_ip: '10.50.0.1', cidr: '10.50.0.0/24', allocation_pools: [{ start: '10.50.0.2', end: '10.50.0.254' }],
          host_routes: [], dns_nameservers: [], description: '', service_types: [], tags: [],
          created_at: '', updated_at: '', revision_number: 0,
        });
        const shown = await alice.get(`/v2.0/subnets/${subnet.id}`);
        assertStatus(shown, 200);
        assertKeys(shown.body.subnet, SUBNET_KEYS);
        const n = await alice.get(`/v2.0/networks/${net.id}`);
        assert.deepEqual(n.body.network.subnets, [subnet.id], 'network-show-200.json lists the subnet');
        assertError(await bob.get(`/v2.0/subnets/${subnet.id}`), 404, 'SubnetNotFound', `Subnet ${subnet.id} could not be found.`);
        const overlap = await alice.post('/v2.0/subnets', { subnet: { network_id: net.id, ip_version: 4, cidr: '10.50.0.128/25' } });
        assertError(overlap, 400, 'InvalidInput', // subnet-create-overlapping-cidr-400.json
          `Invalid input for operation: Requested subnet with cidr: 10.50.0.128/25 for network: ${net.id} overlaps with another subnet.`);
        const badCidr = await alice.post('/v2.0/subnets', { subnet: { network_id: net.id, ip_version: 4, cidr: '10.50.1.0/33' } });
        assertError(badCidr, 400, 'InvalidInput', 'Invalid input for operation: 10.50.1.0/33 is not in a CIDR format.'); // subnet-create-bad-cidr-400.json
        assert.deepEqual((await alice.get(`/v2.0/subnets?network_id=${net.id}&fields=id`)).body, { subnets: [{ id: subnet.id }] }, 'the rejected subnets were not created');
      });

      it('creates a port with Neutron\'s attributes and an address from the subnet (port-create-201.json)', async () => {
        const r = await alice.post('/v2.0/ports', { port: { name: 'wire-port', network_id: net.id } });
        assertStatus(r, 201);
        assert.deepEqual(Object.keys(r.body), ['port']);
        port = r.body.port;
        assertKeys(port, PORT_KEYS);
        assert.match(port.id, UUID);
        assert.match(port.mac_address, /^fa:16:3e(:[0-9a-f]{2}){3}$/);
        assert.equal(port.status, 'DOWN');
        assert.equal(port.name, 'wire-port');
        assert.equal(port.network_id, net.id);
        assert.equal(port.project_id, aliceP.projectId);
        assert.equal(port.tenant_id, aliceP.projectId);
        assert.equal(port.admin_state_up, true);
        assert.equal(port.device_id, '');
        assert.equal(port.device_owner, '');
        assert.equal(port['binding:vnic_type'], 'normal');
        assert.equal(port.port_security_enabled, true);
        assert.deepEqual(port.allowed_address_pairs, []);
        assert.deepEqual(port.extra_dhcp_opts, []);
        assert.ok(Array.isArray(port.security_groups));
        assert.deepEqual(port.tags, []);
        assert.equal(port.fixed_ips.length, 1);
        assert.deepEqual(Object.keys(port.fixed_ips[0]).sort(), ['ip_address', 'subnet_id']);
        assert.equal(port.fixed_ips[0].subnet_id, subnet.id);
        const last = Number(port.fixed_ips[0].ip_address.split('.')[3]);
        assert.ok(port.fixed_ips[0].ip_address.startsWith('10.50.0.') && last >= 2 && last <= 254, port.fixed_ips[0].ip_address);

        const shown = await alice.get(`/v2.0/ports/${port.id}`);
        assertStatus(shown, 200);
        assertKeys(shown.body.port, PORT_KEYS);
        assert.deepEqual(shown.body.port.fixed_ips, port.fixed_ips);

        const upd = await alice.put(`/v2.0/ports/${port.id}`, { port: { name: 'wire-port-renamed' } });
        assertStatus(upd, 200);
        assertKeys(upd.body.port, PORT_KEYS);
        assert.equal(upd.body.port.name, 'wire-port-renamed');
        assert.equal(upd.body.port.revision_number, port.revision_number + 1);
        assert.equal(upd.body.port.mac_address, port.mac_address);
        port = upd.body.port;
      });

      it('lists ports of a network with fields= exactly as ports-list-filter-network.json', async () => {
        const r = await alice.get(`/v2.0/ports?network_id=${net.id}&fields=id&fields=fixed_ips&fields=status`);
        assertStatus(r, 200);
        const mine = r.body.ports.filter((p: Json) => p.id === port.id);
        assert.deepEqual(mine, [{ id: port.id, status: 'DOWN', fixed_ips: port.fixed_ips }]);
        for (const p of r.body.ports) assert.deepEqual(sorted(Object.keys(p)), ['fixed_ips', 'id', 'status']);
        assert.deepEqual((await bob.get(`/v2.0/ports?network_id=${net.id}`)).body, { ports: [] });
      });

      it('answers port-create errors as Neutron does: bad network 404, IP taken 409, MAC taken 409, exhausted 409', async () => {
        const portsOf = async (networkId: string) => sorted((await admin.get(`/v2.0/ports?network_id=${networkId}&fields=id`)).body.ports.map((p: Json) => p.id));
        const before = await portsOf(net.id);

        const bad = await alice.post('/v2.0/ports', { port: { network_id: MISSING_ID } });
        assertStatus(bad, 404);
        assert.deepEqual(bad.body, { NeutronError: { type: 'NetworkNotFound', message: `Network ${MISSING_ID} could not be found.`, detail: '' } });

        const ip = port.fixed_ips[0].ip_address;
        const taken = await alice.post('/v2.0/ports', { port: { network_id: net.id, fixed_ips: [{ subnet_id: subnet.id, ip_address: ip }] } });
        assertStatus(taken, 409);
        assert.deepEqual(taken.body, { NeutronError: { type: 'IpAddressAlreadyAllocated', message: `IP address ${ip} already allocated in subnet ${subnet.id}`, detail: '' } });

        const mac = await alice.post('/v2.0/ports', { port: { network_id: net.id, mac_address: port.mac_address } });
        assertStatus(mac, 409);
        assert.deepEqual(mac.body, { NeutronError: { type: 'MacAddressInUse', message: `Unable to complete operation for network ${net.id}. The mac address ${port.mac_address} is in use.`, detail: '' } });
        assert.deepEqual(await portsOf(net.id), before, 'the rejected ports were not created');

        // A /30 without DHCP has exactly one address to give (.2).
        const small = await createNetwork(alice, { name: 'wire-small' });
        const s = await alice.post('/v2.0/subnets', { subnet: { network_id: small.id, ip_version: 4, cidr: '10.60.0.0/30', enable_dhcp: false } });
        assertStatus(s, 201);
        assert.deepEqual(s.body.subnet.allocation_pools, [{ start: '10.60.0.2', end: '10.60.0.2' }]);
        const only = await alice.post('/v2.0/ports', { port: { network_id: small.id } });
        assertStatus(only, 201);
        assert.deepEqual(only.body.port.fixed_ips, [{ subnet_id: s.body.subnet.id, ip_address: '10.60.0.2' }]);
        const none = await alice.post('/v2.0/ports', { port: { network_id: small.id } });
        assertStatus(none, 409);
        assert.deepEqual(none.body, { NeutronError: { type: 'IpAddressGenerationFailure', message: `No more IP addresses available on network ${small.id}.`, detail: '' } });
        assert.deepEqual(await portsOf(small.id), [only.body.port.id]);

        // A network with a port on it cannot go (network-delete-in-use-409.json).
        const inUse = await alice.del(`/v2.0/networks/${small.id}`);
        assertStatus(inUse, 409);
        assert.deepEqual(inUse.body, { NeutronError: {
          type: 'NetworkInUse',
          message: `Unable to complete operation on network ${small.id}. There are one or more ports still in use on the network, id for these ports is: ${only.body.port.id}.`,
          detail: '',
        } });
        // Nor can its subnet (subnet-delete-in-use-409.json).
        assertError(await alice.del(`/v2.0/subnets/${s.body.subnet.id}`), 409, 'SubnetInUse',
          `Unable to complete operation on subnet ${s.body.subnet.id}: One or more ports have an IP allocation from this subnet.`);
        assertStatus(await alice.get(`/v2.0/networks/${small.id}`), 200);
        assertStatus(await alice.del(`/v2.0/ports/${only.body.port.id}`), 204);
        assertStatus(await alice.del(`/v2.0/networks/${small.id}`), 204);
        assertError(await alice.get(`/v2.0/subnets/${s.body.subnet.id}`), 404, 'SubnetNotFound');
      });

      it('gives a port on an IPv4 + SLAAC IPv6 network an address from each, the IPv6 one by EUI-64', async () => {
        const r = await alice.post('/v2.0/subnets', { subnet: {
          network_id: net.id, ip_version: 6, cidr: 'fd00:50::/64', ipv6_ra_mode: 'slaac', ipv6_address_mode: 'slaac',
        } });
        assertStatus(r, 201);
        const v6 = r.body.subnet;
        assertKeys(v6, SUBNET_KEYS);
        assert.equal(v6.gateway_ip, 'fd00:50::1');
        assert.equal(v6.ipv6_ra_mode, 'slaac');
        assert.equal(v6.ipv6_address_mode, 'slaac');
        assert.deepEqual(v6.allocation_pools, [{ start: 'fd00:50::2', end: 'fd00:50::ffff:ffff:ffff:ffff' }]);
        const p = await alice.post('/v2.0/ports', { port: { network_id: net.id, name: 'dual' } });
        assertStatus(p, 201);
        const bySubnet = new Map(p.body.port.fixed_ips.map((f: Json) => [f.subnet_id, f.ip_address]));
        assert.deepEqual(sorted(bySubnet.keys() as Iterable<string>), sorted([subnet.id, v6.id]));
        assert.equal(bySubnet.get(v6.id), eui64('fd00:50::', p.body.port.mac_address));
        assertStatus(await alice.del(`/v2.0/ports/${p.body.port.id}`), 204);
        assertStatus(await alice.del(`/v2.0/subnets/${v6.id}`), 204);
      });

      it('deletes the port, then the network (subnets go with it)', async () => {
        assertError(await alice.del(`/v2.0/networks/${net.id}`), 409, 'NetworkInUse');
        const d = await alice.del(`/v2.0/ports/${port.id}`);
        assertStatus(d, 204);
        assert.equal(d.text, '');
        assertError(await alice.get(`/v2.0/ports/${port.id}`), 404, 'PortNotFound', `Port ${port.id} could not be found.`);
        assertStatus(await alice.del(`/v2.0/networks/${net.id}`), 204);
        assertError(await alice.get(`/v2.0/subnets/${subnet.id}`), 404, 'SubnetNotFound');
      });
    });

    describe('observability', () => {
      it('exposes nucleon_http_requests_total and nucleon_http_request_duration_seconds by route template and status at /metrics', async () => {
        const n = await createNetwork(alice, { name: 'metered' });
        const m1 = await anonymous.get('/metrics');
        assertStatus(m1, 200);
        assert.match(m1.headers.get('content-type') ?? '', /^text\/plain/);
        for (let i = 0; i < 3; i++) assertStatus(await alice.get(`/v2.0/networks/${n.id}`), 200);
        assertStatus(await alice.get(`/v2.0/networks/${MISSING_ID}`), 404);
        const m2 = (await anonymous.get('/metrics')).text;
        const route = { method: 'GET', route: '/v2.0/networks/:id' };
        const total = (text: string, status: string) => metricValue(text, 'nucleon_http_requests_total', { ...route, status });
        assert.equal(total(m2, '200') - total(m1.text, '200'), 3, 'three 200s counted');
        assert.equal(total(m2, '404') - total(m1.text, '404'), 1, 'one 404 counted');
        assert.ok(metricValue(m2, 'nucleon_http_requests_total', { method: 'POST', route: '/v2.0/networks', status: '201' }) >= 1);
        assert.ok(metricValue(m2, 'nucleon_http_requests_total', { status: '401' }) >= 1, '401s are counted');
        assert.ok(metricValue(m2, 'nucleon_http_requests_total', { status: '400' }) >= 1, '400s are counted');
        const count = metricValue(m2, 'nucleon_http_request_duration_seconds_count', { ...route, status: '200' });
        assert.ok(count >= 3, `duration histogram count ${count}`);
        assert.ok(metricValue(m2, 'nucleon_http_request_duration_seconds_bucket', { ...route, status: '200', le: '+Inf' }) === count);
        assert.ok(metricValue(m2, 'nucleon_http_request_duration_seconds_sum', { ...route, status: '200' }) > 0);
        // Route templates, never raw URLs: no id ever becomes a label value.
        for (const s of parseMetrics(m2)) {
          if (s.labels.route) assert.doesNotMatch(s.labels.route, /[0-9a-f]{8}-[0-9a-f]{4}/, `route label ${s.labels.route}`);
        }
        assertStatus(await alice.del(`/v2.0/networks/${n.id}`), 204);
      });

      it('sends a unique X-Openstack-Request-Id: req-<uuid> with every answer', () => {
        assert.ok(answers.length > 100, `${answers.length} answers recorded`);
        const seen = new Set<string>();
        for (const { what, r } of answers) {
          const id = r.headers.get('x-openstack-request-id');
          assert.match(id ?? '', REQUEST_ID, `${what} → ${r.status} carried ${id}`);
          assert.ok(!seen.has(id!), `${id} repeated`);
          seen.add(id!);
        }
        const statuses = new Set(answers.map((a) => a.r.status));
        for (const s of [200, 201, 204, 400, 401, 403, 404, 412]) assert.ok(statuses.has(s), `an answer with status ${s} was checked`);
      });
    });
  });
});

// The expectations above are copies; when the reference samples are at hand, check they still agree.
const REFERENCE = ['../shared/reference/neutron-wire', '../../shared/reference/neutron-wire', '/work/shared/reference/neutron-wire']
  .map((p) => path.resolve(p)).find((p) => fs.existsSync(path.join(p, 'network-create-201.json')));

describe('expectations copied from the Neutron wire samples', { skip: REFERENCE ? false : 'reference samples not found' }, () => {
  const sample = (file: string) => JSON.parse(fs.readFileSync(path.join(REFERENCE!, file), 'utf8')).response;
  it('match the samples', () => {
    assert.deepEqual(sorted(Object.keys(sample('network-create-201.json').body.network)), sorted(NETWORK_KEYS));
    assert.deepEqual(sorted(Object.keys(sample('network-show-200.json').body.network)), sorted(NETWORK_KEYS.filter((k) => !NETWORK_SHOW_OPTIONAL.includes(k))));
    assert.deepEqual(sorted(Object.keys(sample('subnet-create-201.json').body.subnet)), sorted(SUBNET_KEYS));
    for (const f of ['port-create-201.json', 'port-show-200.json', 'port-update-200.json']) {
      assert.deepEqual(sorted(Object.keys(sample(f).body.port)), sorted(PORT_KEYS), f);
    }
    assert.deepEqual(sorted(Object.keys(sample('neutron-extensions-list.json').body.extensions[0])), EXTENSION_KEYS);
    assert.deepEqual(sample('neutron-401-no-token.json').body, UNAUTHORIZED_BODY);
    assert.deepEqual(sample('bad-url-404.json').body, NOT_FOUND_BODY);
    assert.deepEqual(sample('network-create-bad-json-400.json').body, BAD_JSON_BODY);
    assert.deepEqual(sample('network-create-unknown-attr-400.json').body, UNKNOWN_ATTR_BODY);
    assert.deepEqual(sample('network-update-shared-not-owner-403.json').body, SHARED_NOT_OWNER_BODY);
  });
});
