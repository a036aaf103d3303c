// /v2.0/agents (Neutron's agent extension) on both back-ends: registration
// and heartbeat as an agent does them, then the admin-only API through the
// service and over HTTP.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { forEachBackend } from './support/backends.ts';
import { caller } from './support/callers.ts';
import { startTestCloud, type Json, type TestCloud } from './support/server.ts';
import { AgentService, agentTime, aliveAgents } from '../src/services/agents.ts';
import { emptyQuery } from '../src/services/resource-store.ts';
import { latestSeq, readChanges } from '../src/services/change-feed.ts';
import type { NeutronError } from '../src/errors.ts';
import type { Store } from '../src/store/database.ts';

const alice = caller('aaaa1111aaaa1111aaaa1111aaaa1111');
const admin = caller('adad0000adad0000adad0000adad0000', 'admin');
const MISSING = '0b6b5d1c-9e5f-4f4e-9a4a-000000000000';

/** _make_agent_dict's order: the attribute map, then alive, configurations, resource_versions. */
const AGENT_KEYS = [
  'id', 'agent_type', 'binary', 'topic', 'host', 'admin_state_up', 'created_at', 'started_at', 'heartbeat_timestamp',
  'description', 'availability_zone', 'resources_synced', 'alive', 'configurations', 'resource_versions',
];
const NOT_FOUND_BODY = { NeutronError: { type: 'HTTPNotFound', message: 'The resource could not be found.', detail: '' } };
const TIME_RE = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/;

async function rejects(p: Promise<unknown>, status: number, type: string, message?: string) {
  await assert.rejects(p, (e: NeutronError) => {
    assert.equal(e.type, type, e.message);
    assert.equal(e.status, status, e.message);
    if (message) assert.equal(e.message, message);
    return true;
  });
}

const query = (filters: Record<string, string[]>) => ({ ...emptyQuery(), filters });
const config = (host: string, underlay: string | null = null) => ({
  bridge_mappings: { public: 'br-ex' }, underlay_ip: underlay, network_node: true, namespace_prefix: `${host}-`,
});

/** Makes an agent look dead: its last heartbeat long ago. */
async function expire(store: Store, id: string): Promise<void> {
  const past = agentTime(new Date(Date.now() - 3600_000));
  await store.db.updateTable('agents').set({ heartbeat_timestamp: past, alive_until: past }).where('id', '=', id).execute();
}

forEachBackend((backend) => {
  describe(`agents service (${backend.name})`, () => {
    let store: Store;
    let agents: AgentService;
    before(async () => {
      store = await backend.openStore();
      agents = new AgentService(store);
    });

    it('registers by host: a restart keeps the id, created_at and what an admin set', async () => {
      const first = await agents.register({ host: 'node-a', reportInterval: 5, configurations: config('node-a', '192.0.2.1') });
      assert.match(first.created_at, TIME_RE);
      await agents.update(admin, first.id, { admin_state_up: false, description: 'rack 4' });
      const again = await agents.register({ host: 'node-a', reportInterval: 5, configurations: config('node-a', '192.0.2.9') });
      assert.equal(again.id, first.id);
      assert.equal(again.created_at, first.created_at);
      const shown = await agents.get(admin, first.id);
      assert.deepEqual(Object.keys(shown), AGENT_KEYS);
      assert.equal(shown.admin_state_up, false);
      assert.equal(shown.description, 'rack 4');
      assert.equal((shown.configurations as Json).underlay_ip, '192.0.2.9', 'configurations are the new ones');
      assert.equal(shown.agent_type, 'Nucleon agent');
      assert.equal(shown.binary, 'nucleon-agent');
      assert.equal(shown.topic, 'N/A');
      assert.equal(shown.alive, true);
      assert.equal(shown.resources_synced, null);
      assert.deepEqual(shown.resource_versions, {});
    });

    it('is alive within twice the report interval of its heartbeat, and says so in filters', async () => {
      const a = await agents.register({ host: 'node-b', reportInterval: 5, configurations: config('node-b', '192.0.2.2') });
      await expire(store, a.id);
      assert.equal((await agents.get(admin, a.id)).alive, false);
      const dead = (await agents.list(admin, query({ alive: ['False'] }))).items.map((x) => x.host);
      assert.ok(dead.includes('node-b'));
      assert.ok(!(await aliveAgents(store.db)).some((x) => x.host === 'node-b'), 'a dead agent is no VXLAN peer');
      assert.equal(await agents.heartbeat('node-b', 5), true);
      const shown = await agents.get(admin, a.id);
      assert.equal(shown.alive, true);
      assert.match(shown.heartbeat_timestamp as string, TIME_RE);
      const alive = (await agents.list(admin, query({ alive: ['True'] }))).items.map((x) => x.host);
      assert.ok(alive.includes('node-b'));
      assert.ok((await aliveAgents(store.db)).some((x) => x.host === 'node-b'));
      assert.equal(await agents.heartbeat('no-such-host', 5), false, 'a deleted agent learns it must register again');
    });

    it('filters by host and agent_type and sorts like any collection', async () => {
      const hosts = (await agents.list(admin, { ...query({ host: ['node-a'] }) })).items.map((x) => x.host);
      assert.deepEqual(hosts, ['node-a']);
      const sorted = (await agents.list(admin, { filters: { agent_type: ['Nucleon agent'] }, sort: [{ key: 'host', dir: 'desc' }] })).items.map((x) => x.host);
      assert.deepEqual(sorted, [...sorted].sort().reverse());
    });

    it('is admin-only: members list nothing and find nothing, as Neutron answers them', async () => {
      const a = await agents.register({ host: 'node-c', reportInterval: 5, configurations: config('node-c') });
      assert.deepEqual((await agents.list(alice, emptyQuery())).items, []);
      await rejects(agents.get(alice, a.id), 404, 'HTTPNotFound', 'The resource could not be found.');
      await rejects(agents.update(alice, a.id, { admin_state_up: false }), 404, 'HTTPNotFound');
      await rejects(agents.delete(alice, a.id), 404, 'HTTPNotFound');
      await rejects(agents.get(admin, MISSING), 404, 'AgentNotFound', `Agent ${MISSING} could not be found.`);
      await rejects(agents.get(alice, MISSING), 404, 'AgentNotFound');
    });

    it('updates only admin_state_up and description, with Neutron\'s validation', async () => {
      const a = await agents.register({ host: 'node-d', reportInterval: 5, configurations: config('node-d') });
      await rejects(agents.update(admin, a.id, { host: 'elsewhere' }), 400, 'HTTPBadRequest', 'Cannot update read-only attribute host');
      await rejects(agents.update(admin, a.id, { admin_state_up: 'maybe' }), 400, 'HTTPBadRequest',
        "Invalid input for admin_state_up. Reason: 'maybe' cannot be converted to boolean.");
      await rejects(agents.update(admin, a.id, { description: 'x'.repeat(256) }), 400, 'HTTPBadRequest');
      const u = await agents.update(admin, a.id, { description: null });
      assert.equal(u.description, null);
      await rejects(agents.createBulk(), 400, 'AgentCreateNotSupported');
    });

    it('records registration, updates and deletes in the change feed (heartbeats are not changes)', async () => {
      const before = await latestSeq(store.db);
      const a = await agents.register({ host: 'node-e', reportInterval: 5, configurations: config('node-e', '192.0.2.5') });
      await agents.heartbeat('node-e', 5);
      await agents.update(admin, a.id, { admin_state_up: false });
      await agents.delete(admin, a.id);
      const rows = (await readChanges(store.db, before)).filter((c) => c.resource_id === a.id);
      assert.deepEqual(rows.map((c) => [c.resource_type, c.op]), [['agent', 'update'], ['agent', 'update'], ['agent', 'delete']]);
      await rejects(agents.get(admin, a.id), 404, 'AgentNotFound');
    });

    it('keeps one row per host when two registrations race', async () => {
      const rows = await Promise.all(Array.from({ length: 5 }, () =>
        agents.register({ host: 'node-race', reportInterval: 5, configurations: config('node-race') })));
      assert.equal(new Set(rows.map((r) => r.id)).size, 1);
      assert.equal((await agents.list(admin, query({ host: ['node-race'] }))).items.length, 1);
    });
  });

  describe(`agents over HTTP (${backend.name})`, () => {
    let cloud: TestCloud;
    let id: string;
    before(async () => {
      cloud = await startTestCloud(backend.name);
      id = (await cloud.nucleon.services.agents.register({ host: 'compute-1', reportInterval: 5, configurations: config('compute-1', '192.0.2.11') })).id;
    });

    it('GET /v2.0/agents and /v2.0/agents/{id} answer admins in Neutron\'s shape', async () => {
      const api = cloud.api(cloud.adminToken);
      const list = await api.get('/v2.0/agents');
      assert.equal(list.status, 200);
      assert.deepEqual(Object.keys(list.body), ['agents']);
      const one = list.body.agents.find((a: Json) => a.id === id);
      assert.deepEqual(Object.keys(one), AGENT_KEYS);
      const show = await api.get(`/v2.0/agents/${id}?fields=host&fields=alive`);
      assert.equal(show.status, 200);
      assert.deepEqual(show.body, { agent: { host: 'compute-1', alive: true } });
      const filtered = await api.get('/v2.0/agents?host=compute-1&alive=True');
      assert.deepEqual(filtered.body.agents.map((a: Json) => a.id), [id]);
      const ext = await api.get('/v2.0/extensions/agent');
      assert.equal(ext.body.extension.alias, 'agent');
    });

    it('PUT changes admin_state_up and description; DELETE removes the row', async () => {
      const api = cloud.api(cloud.adminToken);
      const u = await api.put(`/v2.0/agents/${id}`, { agent: { admin_state_up: false, description: 'drained' } });
      assert.equal(u.status, 200);
      assert.equal(u.body.agent.admin_state_up, false);
      assert.equal(u.body.agent.description, 'drained');
      const bad = await api.put(`/v2.0/agents/${id}`, { agent: { binary: 'x' } });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.NeutronError.message, 'Cannot update read-only attribute binary');
      const other = (await cloud.nucleon.services.agents.register({ host: 'compute-2', reportInterval: 5, configurations: config('compute-2') })).id;
      assert.equal((await api.del(`/v2.0/agents/${other}`)).status, 204);
      const gone = await api.get(`/v2.0/agents/${other}`);
      assert.equal(gone.status, 404);
      assert.equal(gone.body.NeutronError.type, 'AgentNotFound');
    });

    it('members: an empty list, 404 for the rest, and no POST for anyone', async () => {
      const api = cloud.api(await cloud.tokenFor('alice', 'member'));
      const list = await api.get('/v2.0/agents');
      assert.equal(list.status, 200);
      assert.deepEqual(list.body, { agents: [] });
      for (const r of [await api.get(`/v2.0/agents/${id}`), await api.put(`/v2.0/agents/${id}`, { agent: { admin_state_up: true } }), await api.del(`/v2.0/agents/${id}`)]) {
        assert.equal(r.status, 404);
        assert.deepEqual(r.body, NOT_FOUND_BODY);
      }
      const post = await cloud.api(cloud.adminToken).post('/v2.0/agents', { agent: {} });
      assert.equal(post.status, 400);
      assert.equal(post.body.NeutronError.type, 'AgentCreateNotSupported');
    });
  });
});
