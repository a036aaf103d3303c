import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { forEachBackend } from './support/backends.ts';
import { rejectsNeutron as rejects } from './support/assertions.ts';
import { caller } from './support/callers.ts';
import { createServices, type Services } from '../src/services/index.ts';
import { emptyQuery } from '../src/services/resource-store.ts';

const alice = caller('aaaa1111aaaa1111aaaa1111aaaa1111');
const bob = caller('bbbb2222bbbb2222bbbb2222bbbb2222');
const admin = caller('adad0000adad0000adad0000adad0000', 'admin');
const aliceReader = caller(alice.projectId, 'reader');


forEachBackend((backend) => {
  describe(`networks on ${backend.name}`, () => {
    let s: Services;
    before(async () => { s = createServices(await backend.openStore()); });

    it('creates with Neutron defaults and a tenant vxlan segment', async () => {
      const n = await s.networks.create(alice, { name: 'net1' });
      assert.equal(n.name, 'net1');
      assert.equal(n.project_id, alice.projectId);
      assert.equal(n.tenant_id, alice.projectId);
      assert.equal(n.admin_state_up, true);
      assert.equal(n.shared, false);
      assert.equal(n.mtu, 1450);
      assert.equal(n.status, 'ACTIVE');
      assert.deepEqual(n.subnets, []);
      assert.equal(n.revision_number, 1);
      assert.equal(n['router:external'], false);
      assert.ok(!('provider:network_type' in n), 'provider attributes are admin-only');
      const seen = await s.networks.get(admin, n.id as string);
      assert.equal(seen['provider:network_type'], 'vxlan');
      assert.equal(typeof seen['provider:segmentation_id'], 'number');
    });

    it('hides other projects (404) and refuses non-owners of shared networks (403)', async () => {
      const n = await s.networks.create(alice, { name: 'private' });
      await rejects(s.networks.get(bob, n.id as string), 404, 'NetworkNotFound', /could not be found/);
      await rejects(s.networks.update(bob, n.id as string, { name: 'x' }), 404, 'NetworkNotFound');
      const shared = await s.networks.create(admin, { name: 'shared', shared: true });
      assert.equal((await s.networks.get(bob, shared.id as string)).shared, true);
      await rejects(s.networks.update(bob, shared.id as string, { name: 'hijack' }), 403, 'PolicyNotAuthorized', /^rule:update_network is disallowed by policy$/);
    });

    it('enforces admin-only attributes with the composed policy rule', async () => {
      await rejects(
        s.networks.create(alice, { name: 'x', 'provider:network_type': 'vlan', 'provider:physical_network': 'public', 'provider:segmentation_id': 150 }),
        403, 'PolicyNotAuthorized',
        /^\(\(\(rule:create_network and rule:create_network:provider:network_type\) and rule:create_network:provider:physical_network\) and rule:create_network:provider:segmentation_id\) is disallowed by policy$/,
      );
      await s.networks.create(alice, { name: 'x', shared: false });
      await rejects(s.networks.create(alice, { shared: true }), 403, 'PolicyNotAuthorized');
      await rejects(s.networks.create(aliceReader, { name: 'r' }), 403, 'PolicyNotAuthorized', /^rule:create_network is disallowed/);
    });

    it('allocates provider segments once', async () => {
      const v = await s.networks.create(admin, { name: 'v', 'provider:network_type': 'vlan', 'provider:physical_network': 'public', 'provider:segmentation_id': 150 });
      assert.equal(v.mtu, 1500);
      assert.equal(v['provider:segmentation_id'], 150);
      await rejects(
        s.networks.create(admin, { name: 'v2', 'provider:network_type': 'vlan', 'provider:physical_network': 'public', 'provider:segmentation_id': 150 }),
        409, 'VlanIdInUse', /^Unable to create the network. The VLAN 150 on physical network public is in use.$/,
      );
      const auto = await s.networks.create(admin, { 'provider:network_type': 'vlan', 'provider:physical_network': 'public' });
      assert.equal(auto['provider:segmentation_id'], 100);
      await s.networks.create(admin, { 'provider:network_type': 'flat', 'provider:physical_network': 'ext' });
      await rejects(s.networks.create(admin, { 'provider:network_type': 'flat', 'provider:physical_network': 'ext' }), 409, 'FlatNetworkInUse');
      await rejects(s.networks.create(admin, { 'provider:network_type': 'vlan', 'provider:physical_network': 'nope', 'provider:segmentation_id': 5 }), 400, 'InvalidInput');
    });

    it('validates attributes with Neutron messages', async () => {
      await rejects(s.networks.create(alice, { foo: 1 }), 400, 'HTTPBadRequest', /^Unrecognized attribute\(s\) 'foo'$/);
      await rejects(s.networks.create(alice, { admin_state_up: 'maybe' }), 400, 'HTTPBadRequest', /^Invalid input for admin_state_up. Reason: 'maybe' cannot be converted to boolean.$/);
      await rejects(s.networks.create(alice, { name: 7 }), 400, 'HTTPBadRequest', /not a valid string/);
      await rejects(s.networks.create(alice, { status: 'DOWN' }), 400, 'HTTPBadRequest', /not allowed in POST/);
      await rejects(s.networks.create(alice, { mtu: 9000 }), 400, 'InvalidInput', /MTU is too big/);
    });

    it('updates with revision numbers and If-Match', async () => {
      const n = await s.networks.create(alice, { name: 'rev' });
      const u = await s.networks.update(alice, n.id as string, { name: 'rev2' }, 'revision_number=1');
      assert.equal(u.revision_number, 2);
      await rejects(s.networks.update(alice, n.id as string, { name: 'x' }, 'revision_number=999'), 412, 'RevisionNumberConstraintFailed', /^Constrained to 999, but current revision is 2$/);
    });

    it('lists with filters, tags, sorting and pagination; bulk is all-or-nothing', async () => {
      const p = caller('cccc3333cccc3333cccc3333cccc3333');
      const made = await s.networks.createBulk(p, [{ name: 'b' }, { name: 'a' }, { name: 'c', admin_state_up: false }]);
      assert.equal(made.length, 3);
      await rejects(s.networks.createBulk(p, [{ name: 'ok' }, { name: 'bad', foo: 1 }]), 400, 'HTTPBadRequest');
      await rejects(s.networks.createBulk(p, [{ name: 'ok' }, { shared: true }]), 403, 'PolicyNotAuthorized');
      // Shared and external networks of others are visible too; look at p's own.
      const own = (q: Partial<ReturnType<typeof emptyQuery>> = {}) => ({ ...emptyQuery(), ...q, filters: { project_id: [p.projectId], ...q.filters } });
      let page = await s.networks.list(p, own());
      assert.equal(page.items.length, 3);
      page = await s.networks.list(p, own({ filters: { admin_state_up: ['False'] } }));
      assert.deepEqual(page.items.map((i) => i.name), ['c']);
      page = await s.networks.list(p, own({ sort: [{ key: 'name', dir: 'desc' }] }));
      assert.deepEqual(page.items.map((i) => i.name), ['c', 'b', 'a']);
      page = await s.networks.list(p, own({ sort: [{ key: 'name', dir: 'asc' }], limit: 2 }));
      assert.deepEqual(page.items.map((i) => i.name), ['a', 'b']);
      const next = await s.networks.list(p, own({ sort: [{ key: 'name', dir: 'asc' }], limit: 2, marker: page.items[1].id as string }));
      assert.deepEqual(next.items.map((i) => i.name), ['c']);
      const prev = await s.networks.list(p, own({ sort: [{ key: 'name', dir: 'asc' }], limit: 2, marker: next.items[0].id as string, pageReverse: true }));
      assert.deepEqual(prev.items.map((i) => i.name), ['a', 'b']);
      await s.networks.replaceTags(p, made[0].id as string, ['red', 'blue']);
      await s.networks.addTag(p, made[1].id as string, 'red');
      const red = await s.networks.list(p, own({ filters: { tags: ['red'] } }));
      assert.equal(red.items.length, 2);
      const both = await s.networks.list(p, own({ filters: { tags: ['red,blue'] } }));
      assert.deepEqual(both.items.map((i) => i.name), ['b']);
      const notRed = await s.networks.list(p, own({ filters: { 'not-tags-any': ['red'] } }));
      assert.deepEqual(notRed.items.map((i) => i.name), ['c']);
      assert.equal((await s.networks.get(p, made[0].id as string)).revision_number, 2);
      await rejects(s.networks.list(p, own({ sort: [{ key: 'subnets', dir: 'asc' }] })), 400, 'HTTPBadRequest');
    });

    it('deletes, refusing while ports are in use', async () => {
      const n = await s.networks.create(alice, { name: 'del' });
      await s.networks.delete(alice, n.id as string);
      await rejects(s.networks.get(alice, n.id as string), 404, 'NetworkNotFound');
    });
  });
});
