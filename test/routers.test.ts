import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { forEachBackend } from './support/backends.ts';
import { caller } from './support/callers.ts';
import { startTestCloud, type Json, type TestCloud } from './support/server.ts';
import { createServices, type Services } from '../src/services/index.ts';
import { emptyQuery } from '../src/services/resource-store.ts';
import { latestSeq, readChanges } from '../src/services/change-feed.ts';
import {
  authorizeRouterWrite, externalIpsChanged, interfaceRequest, pyRoutes, routesError, routesThrough, subnetConflict,
} from '../src/services/routers.ts';
import type { NeutronError } from '../src/errors.ts';
import { rejectsNeutron } from './support/assertions.ts';
import type { Store } from '../src/store/database.ts';

const alice = caller('aaaa1111aaaa1111aaaa1111aaaa1111');
const bob = caller('bbbb2222bbbb2222bbbb2222bbbb2222');
const aliceReader = caller(alice.projectId, 'reader');
const admin = caller('adad0000adad0000adad0000adad0000', 'admin');
const MISSING = '0b6b5d1c-9e5f-4f4e-9a4a-000000000000';

/** Exact messages matter here, so a string is matched whole (the shared helper takes patterns). */
const rejects = (p: Promise<unknown>, status: number, type: string, message?: RegExp | string) =>
  rejectsNeutron(p, status, type, typeof message === 'string' ? new RegExp(`^${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) : message);

type FixedIps = Array<{ subnet_id: string; ip_address: string }>;
const query = (filters: Record<string, string[]>) => ({ ...emptyQuery(), filters });

/** router-create-201.json: a member's view, in Neutron's order (project_id last). */
const ROUTER_KEYS = [
  'id', 'name', 'tenant_id', 'admin_state_up', 'status', 'external_gateway_info', 'description', 'availability_zones',
  'availability_zone_hints', 'routes', 'flavor_id', 'tags', 'created_at', 'updated_at', 'revision_number', 'project_id',
];

describe('router rules (pure)', () => {
  it('finds duplicate and overlapping subnets as Neutron words them', () => {
    const a = { id: 'A', cidr: '10.0.0.0/24' };
    const b = { id: 'B', cidr: '10.0.0.0/16' };
    const c = { id: 'C', cidr: '10.1.0.0/24' };
    assert.equal(subnetConflict([], [a], [c]), null);
    assert.equal(subnetConflict(['A'], [a], [a])?.message, 'Bad router request: Router already has a port on subnet A.');
    assert.equal(subnetConflict(['A'], [a], [b])?.message, 'Bad router request: Cidr 10.0.0.0/16 of subnet B overlaps with cidr 10.0.0.0/24 of subnet A.');
    assert.equal(subnetConflict(['B'], [b], [a])?.type, 'BadRequest');
    assert.equal(subnetConflict([], [{ id: 'V6', cidr: 'fd00::/64' }], [a]), null, 'versions never overlap');
  });

  it('checks route nexthops against what the router is attached to', () => {
    const routes = [{ destination: '192.168.0.0/16', nexthop: '10.0.0.5' }];
    assert.equal(routesError(routes, ['10.0.0.0/24'], ['10.0.0.1']), null);
    assert.equal(routesError(routes, ['10.1.0.0/24'], ['10.1.0.1']), 'the nexthop is not connected with router');
    assert.equal(routesError(routes, ['10.0.0.0/24'], ['10.0.0.5']), 'the nexthop is used by router');
    assert.equal(routesThrough(routes, '10.0.0.0/24'), true);
    assert.equal(routesThrough(routes, '10.0.1.0/24'), false);
    assert.equal(pyRoutes(routes), "[{'destination': '192.168.0.0/16', 'nexthop': '10.0.0.5'}]");
  });

  it('validates interface requests in Neutron\'s order', () => {
    assert.throws(() => interfaceRequest({}, false), /Bad router request: Either subnet_id or port_id must be specified\.$/);
    assert.throws(() => interfaceRequest(null, false), /Either subnet_id or port_id/);
    assert.throws(() => interfaceRequest({ subnet_id: 'x' }, false), /Bad router request: 'x' is not a valid UUID./);
    assert.throws(() => interfaceRequest({ subnet_id: MISSING, port_id: MISSING }, false), /Cannot specify both subnet-id and port-id/);
    assert.deepEqual(interfaceRequest({ subnet_id: MISSING, port_id: MISSING }, true), { portId: MISSING, subnetId: MISSING });
  });

  it('sees an external IP change only in what was asked for', () => {
    const now = [{ subnet_id: 's', ip_address: '203.0.113.5' }];
    assert.equal(externalIpsChanged(now, []), false);
    assert.equal(externalIpsChanged(now, [{ subnet_id: 's' }]), true, 'an address set that differs (none asked) is a change, as in Neutron');
    assert.equal(externalIpsChanged(now, [{ subnet_id: 's', ip_address: '203.0.113.5' }]), false);
    assert.equal(externalIpsChanged(now, [{ subnet_id: 's', ip_address: '203.0.113.6' }]), true);
  });

  it('composes the policy rule as oslo.policy prints it', () => {
    const refused = (ctx: typeof alice, action: 'create' | 'update', raw: Record<string, unknown>) => {
      try { authorizeRouterWrite(ctx, action, raw); return null; } catch (e) { return (e as Error).message; }
    };
    assert.equal(refused(alice, 'create', { external_gateway_info: { network_id: MISSING } }), null);
    assert.equal(refused(alice, 'update', { external_gateway_info: { network_id: MISSING, enable_snat: true } }),
      '(rule:update_router and (rule:update_router:external_gateway_info and (rule:update_router:external_gateway_info:network_id and rule:update_router:external_gateway_info:enable_snat))) is disallowed by policy');
    assert.equal(refused(alice, 'create', { external_gateway_info: { enable_snat: false, external_fixed_ips: [], network_id: MISSING } }),
      '(rule:create_router and (rule:create_router:external_gateway_info and (rule:create_router:external_gateway_info:network_id and rule:create_router:external_gateway_info:external_fixed_ips and rule:create_router:external_gateway_info:enable_snat))) is disallowed by policy');
    assert.equal(refused(alice, 'create', { distributed: false, ha: true }), '((rule:create_router and rule:create_router:distributed) and rule:create_router:ha) is disallowed by policy');
    assert.equal(refused(aliceReader, 'create', { name: 'x' }), 'rule:create_router is disallowed by policy');
    assert.equal(refused(admin, 'create', { distributed: true, external_gateway_info: { network_id: MISSING, enable_snat: false } }), null);
  });
});

forEachBackend((backend) => {
  describe(`routers on ${backend.name}`, () => {
    let s: Services;
    let store: Store;
    let publicNet: string;
    let publicSubnet: string;
    before(async () => {
      store = await backend.openStore();
      s = createServices(store);
      // This suite makes more routers than the default quota of 10.
      await store.db.insertInto('quotas').values({ project_id: alice.projectId, resource: 'router', hard_limit: -1 }).execute();
      const pub = await s.networks.create(admin, { name: 'public', 'router:external': true });
      publicNet = pub.id as string;
      publicSubnet = (await s.subnets.create(admin, { network_id: publicNet, ip_version: 4, cidr: '203.0.113.0/24', enable_dhcp: false })).id as string;
    });

    let cidrCounter = 0;
    /** A network of `who` with one IPv4 subnet (a fresh 10.x.0.0/24 unless given). */
    async function netWithSubnet(who = alice, cidr = `10.${100 + cidrCounter++}.0.0/24`, extra: Record<string, unknown> = {}) {
      const network = await s.networks.create(who, { name: 'n', ...extra });
      const subnet = await s.subnets.create(who, { network_id: network.id, ip_version: 4, cidr });
      return { networkId: network.id as string, subnetId: subnet.id as string, cidr };
    }
    const portsOf = async (routerId: string) => (await s.ports.list(admin, query({ device_id: [routerId] }))).items;

    it('creates with the attributes, order and defaults of a real Neutron (router-create-201.json)', async () => {
      const r = await s.routers.create(alice, { name: 'wire-router' });
      assert.deepEqual(Object.keys(r), ROUTER_KEYS);
      assert.equal(r.name, 'wire-router');
      assert.equal(r.status, 'ACTIVE');
      assert.equal(r.admin_state_up, true);
      assert.equal(r.external_gateway_info, null);
      assert.deepEqual([r.availability_zones, r.availability_zone_hints, r.routes, r.tags], [[], [], [], []]);
      assert.equal(r.flavor_id, null);
      assert.equal(r.revision_number, 1);
      assert.equal(r.project_id, alice.projectId);
      assert.equal(r.tenant_id, alice.projectId);
      const seen = await s.routers.get(admin, r.id as string);
      assert.equal(seen.distributed, false);
      assert.equal(seen.ha, false);
      assert.deepEqual(Object.keys(seen).filter((k) => !ROUTER_KEYS.includes(k)), ['distributed', 'ha'], 'only admins see them');
      await rejects(s.routers.create(alice, { routes: [] }), 400, 'HTTPBadRequest', "Attribute 'routes' not allowed in POST");
      await rejects(s.routers.create(alice, { flavor_id: MISSING }), 404, 'FlavorNotFound', `Flavor ${MISSING} could not be found.`);
    });

    it('keeps distributed and ha to admins, to set and to see; changing them needs the router down', async () => {
      await rejects(s.routers.create(alice, { distributed: true }), 403, 'PolicyNotAuthorized', '(rule:create_router and rule:create_router:distributed) is disallowed by policy');
      await rejects(s.routers.create(alice, { ha: false }), 403, 'PolicyNotAuthorized', '(rule:create_router and rule:create_router:ha) is disallowed by policy');
      const r = await s.routers.create(admin, { name: 'dvr', distributed: true, ha: true, tenant_id: alice.projectId });
      assert.deepEqual([r.distributed, r.ha], [true, true]);
      const mine = await s.routers.get(alice, r.id as string);
      assert.ok(!('distributed' in mine) && !('ha' in mine));
      await rejects(s.routers.update(alice, r.id as string, { ha: false }), 403, 'PolicyNotAuthorized', '(rule:update_router and rule:update_router:ha) is disallowed by policy');
      await rejects(s.routers.update(admin, r.id as string, { ha: false }), 400, 'BadRequest',
        'Bad router request: Cannot change HA attribute of active routers. Please set router admin_state_up to False prior to upgrade.');
      await rejects(s.routers.update(admin, r.id as string, { distributed: false, admin_state_up: false }), 400, 'BadRequest',
        /Cannot change the 'distributed' attribute of active routers/);
      const down = await s.routers.update(admin, r.id as string, { ha: false, admin_state_up: false });
      assert.deepEqual([down.ha, down.admin_state_up], [false, false]);
      const central = await s.routers.update(admin, r.id as string, { distributed: false });
      assert.equal(central.distributed, false);
    });

    it('hides other projects\' routers (404 RouterNotFound) and keeps readers to reading', async () => {
      const r = await s.routers.create(alice, { name: 'private' });
      const id = r.id as string;
      await rejects(s.routers.get(bob, id), 404, 'RouterNotFound', `Router ${id} could not be found`);
      await rejects(s.routers.update(bob, id, { name: 'x' }), 404, 'RouterNotFound');
      await rejects(s.routers.delete(bob, id), 404, 'RouterNotFound');
      await rejects(s.routers.addTag(bob, id, 't'), 404, 'RouterNotFound');
      await rejects(s.routers.addInterface(bob, id, { subnet_id: MISSING }), 404, 'RouterNotFound');
      assert.equal((await s.routers.list(bob, emptyQuery())).items.some((x) => x.id === id), false);
      assert.equal((await s.routers.get(aliceReader, id)).name, 'private');
      await rejects(s.routers.create(aliceReader, { name: 'x' }), 403, 'PolicyNotAuthorized', 'rule:create_router is disallowed by policy');
      await rejects(s.routers.addInterface(aliceReader, id, { subnet_id: MISSING }), 403, 'PolicyNotAuthorized', 'rule:add_router_interface is disallowed by policy');
      await rejects(s.routers.removeInterface(aliceReader, id, { subnet_id: MISSING }), 403, 'PolicyNotAuthorized', 'rule:remove_router_interface is disallowed by policy');
      assert.equal((await s.routers.get(admin, id)).name, 'private');
      await rejects(s.routers.get(alice, MISSING), 404, 'RouterNotFound', `Router ${MISSING} could not be found`);
    });

    it('sets a gateway on an external network a member does not own: a port of project \'\' with an address of it', async () => {
      const r = await s.routers.create(alice, { name: 'gw' });
      const id = r.id as string;
      const set = await s.routers.update(alice, id, { external_gateway_info: { network_id: publicNet } });
      const gw = set.external_gateway_info as { network_id: string; external_fixed_ips: FixedIps; enable_snat: boolean };
      assert.deepEqual(Object.keys(gw), ['network_id', 'external_fixed_ips', 'enable_snat'], 'router-set-gateway-200.json order');
      assert.equal(gw.network_id, publicNet);
      assert.equal(gw.enable_snat, true);
      assert.equal(gw.external_fixed_ips.length, 1);
      assert.equal(gw.external_fixed_ips[0].subnet_id, publicSubnet);
      assert.match(gw.external_fixed_ips[0].ip_address, /^203\.0\.113\.\d+$/);
      assert.equal(set.revision_number, 2);
      const [port] = await portsOf(id);
      assert.equal(port.device_owner, 'network:router_gateway');
      assert.equal(port.project_id, '');
      assert.equal(port.port_security_enabled, false);
      assert.deepEqual(port.security_groups, []);
      assert.deepEqual(port.fixed_ips, gw.external_fixed_ips);
      assert.equal((await s.ports.list(alice, emptyQuery())).items.some((p) => p.id === port.id), false, 'not in the member\'s port list');
      // Member-only sub-attributes are refused; admins may choose SNAT and the address.
      await rejects(s.routers.update(alice, id, { external_gateway_info: { network_id: publicNet, external_fixed_ips: [{ ip_address: '203.0.113.9' }] } }),
        403, 'PolicyNotAuthorized', '(rule:update_router and (rule:update_router:external_gateway_info and (rule:update_router:external_gateway_info:network_id and rule:update_router:external_gateway_info:external_fixed_ips))) is disallowed by policy');
      const chosen = await s.routers.update(admin, id, { external_gateway_info: { network_id: publicNet, enable_snat: false, external_fixed_ips: [{ subnet_id: publicSubnet, ip_address: '203.0.113.9' }] } });
      assert.deepEqual(chosen.external_gateway_info, { network_id: publicNet, external_fixed_ips: [{ subnet_id: publicSubnet, ip_address: '203.0.113.9' }], enable_snat: false });
      const [same] = await portsOf(id);
      assert.equal(same.id, port.id, 'new addresses on the same network: the same port, re-addressed');
      await rejects(s.routers.update(admin, id, { external_gateway_info: { network_id: publicNet, external_fixed_ips: [{ ip_address: '203.0.113.1' }] } }),
        400, 'BadRequest', 'Bad router request: External IP 203.0.113.1 is the same as the gateway IP.');
      // Unspecified enable_snat is the default again, as ext-gw-mode does on every gateway update.
      const again = await s.routers.update(alice, id, { external_gateway_info: { network_id: publicNet } });
      assert.equal((again.external_gateway_info as { enable_snat: boolean }).enable_snat, true);
      // Another external network replaces the port; clearing removes it.
      const other = await s.networks.create(admin, { name: 'public2', 'router:external': true });
      await s.subnets.create(admin, { network_id: other.id, ip_version: 4, cidr: '198.51.100.0/24' });
      const moved = await s.routers.update(alice, id, { external_gateway_info: { network_id: other.id } });
      assert.equal((moved.external_gateway_info as { network_id: string }).network_id, other.id);
      const [replacement] = await portsOf(id);
      assert.notEqual(replacement.id, port.id);
      await rejects(s.ports.get(admin, port.id as string), 404, 'PortNotFound');
      const cleared = await s.routers.update(alice, id, { external_gateway_info: null });
      assert.equal(cleared.external_gateway_info, null);
      assert.deepEqual(await portsOf(id), []);
      assert.equal((await s.routers.update(alice, id, { external_gateway_info: {} })).external_gateway_info, null, '{} also means none');
    });

    it('refuses gateways on networks that are not external, invisible or malformed', async () => {
      const r = await s.routers.create(alice, {});
      const id = r.id as string;
      const { networkId } = await netWithSubnet(alice);
      await rejects(s.routers.update(alice, id, { external_gateway_info: { network_id: networkId } }), 400, 'BadRequest',
        `Bad router request: Network ${networkId} is not an external network.`);
      const shared = await s.networks.create(admin, { name: 'shared', shared: true });
      await rejects(s.routers.update(alice, id, { external_gateway_info: { network_id: shared.id } }), 400, 'BadRequest', /is not an external network/);
      await rejects(s.routers.update(alice, id, { external_gateway_info: { network_id: MISSING } }), 404, 'NetworkNotFound');
      await rejects(s.routers.create(alice, { external_gateway_info: { enable_snat: true } }), 400, 'HTTPBadRequest',
        "Invalid input for external_gateway_info. Reason: Validation of dictionary's keys failed. Expected keys: {'network_id'} Provided keys: {'enable_snat'}.");
      await rejects(s.routers.update(alice, id, { external_gateway_info: { network_id: publicNet, foo: 1 } }), 400, 'HTTPBadRequest', /Unexpected keys supplied: foo/);
      await rejects(s.routers.update(alice, id, { external_gateway_info: 'public' }), 400, 'HTTPBadRequest', /'public' is not a dictionary/);
      // On create, the gateway comes with the router, in the same transaction.
      const withGw = await s.routers.create(alice, { name: 'born-with-gw', external_gateway_info: { network_id: publicNet } });
      assert.equal((withGw.external_gateway_info as { network_id: string }).network_id, publicNet);
      const before = (await s.routers.list(alice, emptyQuery())).items.length;
      await rejects(s.routers.create(alice, { name: 'nope', external_gateway_info: { network_id: networkId } }), 400, 'BadRequest');
      assert.equal((await s.routers.list(alice, emptyQuery())).items.length, before, 'no router without its gateway');
    });

    it('adds and removes an interface by subnet (router-add-interface-200.json), with the subnet\'s gateway address', async () => {
      const { networkId, subnetId } = await netWithSubnet();
      const r = await s.routers.create(alice, { name: 'r' });
      const id = r.id as string;
      const info = await s.routers.addInterface(alice, id, { subnet_id: subnetId });
      assert.deepEqual(Object.keys(info), ['id', 'tenant_id', 'port_id', 'network_id', 'subnet_id', 'subnet_ids', 'project_id']);
      assert.deepEqual({ ...info, port_id: '' }, {
        id, tenant_id: alice.projectId, port_id: '', network_id: networkId, subnet_id: subnetId, subnet_ids: [subnetId], project_id: alice.projectId,
      });
      const port = await s.ports.get(alice, info.port_id);
      assert.equal(port.device_owner, 'network:router_interface');
      assert.equal(port.device_id, id);
      assert.equal(port.project_id, alice.projectId);
      assert.equal(port.port_security_enabled, false);
      assert.deepEqual(port.security_groups, []);
      const subnet = await s.subnets.get(alice, subnetId);
      assert.deepEqual(port.fixed_ips, [{ subnet_id: subnetId, ip_address: subnet.gateway_ip }]);
      assert.equal((await s.routers.get(alice, id)).revision_number, 2);
      await rejects(s.routers.addInterface(alice, id, { subnet_id: subnetId }), 400, 'BadRequest', `Bad router request: Router already has a port on subnet ${subnetId}.`);
      // The port API cannot take it away.
      await rejects(s.ports.delete(alice, info.port_id), 409, 'ServicePortInUse',
        `Port ${info.port_id} cannot be deleted directly via the port API: has device owner network:router_interface.`);
      await rejects(s.routers.delete(alice, id), 409, 'RouterInUse', `Router ${id} has ports still attached: ${info.port_id}`);
      const removed = await s.routers.removeInterface(alice, id, { subnet_id: subnetId });
      assert.deepEqual(removed, info);
      await rejects(s.ports.get(alice, info.port_id), 404, 'PortNotFound');
      assert.equal((await s.routers.get(alice, id)).revision_number, 3);
      await rejects(s.routers.removeInterface(alice, id, { subnet_id: subnetId }), 404, 'RouterInterfaceNotFoundForSubnet',
        `Router ${id} has no interface on subnet ${subnetId}`);
      await rejects(s.routers.removeInterface(alice, id, { port_id: info.port_id }), 404, 'RouterInterfaceNotFound',
        `Router ${id} does not have an interface with id ${info.port_id}`);
      await s.routers.delete(alice, id);
    });

    it('refuses interfaces Neutron refuses', async () => {
      const r = await s.routers.create(alice, {});
      const id = r.id as string;
      await rejects(s.routers.addInterface(alice, id, {}), 400, 'BadRequest', 'Bad router request: Either subnet_id or port_id must be specified.');
      await rejects(s.routers.addInterface(alice, id, { subnet_id: MISSING, port_id: MISSING }), 400, 'BadRequest', 'Bad router request: Cannot specify both subnet-id and port-id.');
      await rejects(s.routers.addInterface(alice, id, { subnet_id: MISSING }), 404, 'SubnetNotFound');
      const bobs = await netWithSubnet(bob);
      await rejects(s.routers.addInterface(alice, id, { subnet_id: bobs.subnetId }), 404, 'SubnetNotFound');
      const noGw = await s.networks.create(alice, {});
      const noGwSubnet = await s.subnets.create(alice, { network_id: noGw.id, ip_version: 4, cidr: '10.99.0.0/24', gateway_ip: null });
      await rejects(s.routers.addInterface(alice, id, { subnet_id: noGwSubnet.id }), 400, 'BadRequest',
        'Bad router request: Subnet for router interface must have a gateway IP.');
      // A globally shared network's subnet belongs to its owner, not to the member.
      const shared = await netWithSubnet(admin, '10.98.0.0/24', { shared: true });
      await rejects(s.routers.addInterface(alice, id, { subnet_id: shared.subnetId }), 400, 'BadRequest',
        `Bad router request: Cannot add interface to router because subnet ${shared.subnetId} is not owned by project making the request.`);
      const a = await netWithSubnet(alice, '10.97.0.0/24');
      const b = await netWithSubnet(alice, '10.97.0.0/16');
      await s.routers.addInterface(alice, id, { subnet_id: a.subnetId });
      await rejects(s.routers.addInterface(alice, id, { subnet_id: b.subnetId }), 400, 'BadRequest',
        `Bad router request: Cidr 10.97.0.0/16 of subnet ${b.subnetId} overlaps with cidr 10.97.0.0/24 of subnet ${a.subnetId}.`);
      // The gateway's network counts too.
      const clash = await netWithSubnet(alice, '203.0.113.0/25');
      await s.routers.update(alice, id, { external_gateway_info: { network_id: publicNet } });
      await rejects(s.routers.addInterface(alice, id, { subnet_id: clash.subnetId }), 400, 'BadRequest',
        `Bad router request: Cidr 203.0.113.0/25 of subnet ${clash.subnetId} overlaps with cidr 203.0.113.0/24 of subnet ${publicSubnet}.`);
    });

    it('adds an existing port as an interface, and takes it back', async () => {
      const { networkId, subnetId } = await netWithSubnet();
      const r = await s.routers.create(alice, {});
      const id = r.id as string;
      const p = await s.ports.create(alice, { network_id: networkId, name: 'mine' });
      const info = await s.routers.addInterface(alice, id, { port_id: p.id });
      assert.deepEqual(info, { id, tenant_id: alice.projectId, port_id: p.id, network_id: networkId, subnet_id: subnetId, subnet_ids: [subnetId], project_id: alice.projectId });
      const now = await s.ports.get(alice, p.id as string);
      assert.deepEqual([now.device_id, now.device_owner, now.revision_number], [id, 'network:router_interface', 2]);
      const r2 = await s.routers.create(alice, {});
      await rejects(s.routers.addInterface(alice, r2.id as string, { port_id: p.id }), 409, 'PortInUse',
        `Unable to complete operation on port ${p.id} for network ${networkId}. Port already has an attached device ${id}.`);
      const bare = await s.ports.create(alice, { network_id: networkId, fixed_ips: [] });
      await rejects(s.routers.addInterface(alice, r2.id as string, { port_id: bare.id }), 400, 'BadRequest', 'Bad router request: Router port must have at least one fixed IP.');
      await rejects(s.routers.addInterface(alice, r2.id as string, { port_id: MISSING }), 404, 'PortNotFound');
      const other = await netWithSubnet();
      await rejects(s.routers.removeInterface(alice, id, { port_id: p.id, subnet_id: other.subnetId }), 400, 'SubnetMismatchForPort',
        `Subnet on port ${p.id} does not match the requested subnet ${other.subnetId}.`);
      const removed = await s.routers.removeInterface(alice, id, { port_id: p.id, subnet_id: subnetId });
      assert.equal(removed.port_id, p.id);
      await rejects(s.ports.get(alice, p.id as string), 404, 'PortNotFound', undefined);
    });

    it('puts the IPv6 prefixes of one network on one interface port, and removes them one by one', async () => {
      const network = await s.networks.create(alice, {});
      const v6a = await s.subnets.create(alice, { network_id: network.id, ip_version: 6, cidr: 'fd00:1::/64', ipv6_ra_mode: 'slaac', ipv6_address_mode: 'slaac' });
      const v6b = await s.subnets.create(alice, { network_id: network.id, ip_version: 6, cidr: 'fd00:2::/64', ipv6_ra_mode: 'slaac', ipv6_address_mode: 'slaac' });
      const r = await s.routers.create(alice, {});
      const id = r.id as string;
      const first = await s.routers.addInterface(alice, id, { subnet_id: v6a.id });
      const second = await s.routers.addInterface(alice, id, { subnet_id: v6b.id });
      assert.equal(second.port_id, first.port_id);
      assert.deepEqual(second.subnet_ids, [v6b.id]);
      const port = await s.ports.get(alice, first.port_id);
      assert.deepEqual((port.fixed_ips as FixedIps).map((f) => f.ip_address).sort(), ['fd00:1::1', 'fd00:2::1']);
      await s.routers.removeInterface(alice, id, { subnet_id: v6a.id });
      assert.deepEqual((await s.ports.get(alice, first.port_id)).fixed_ips, [{ subnet_id: v6b.id, ip_address: 'fd00:2::1' }]);
      await s.routers.removeInterface(alice, id, { subnet_id: v6b.id });
      await rejects(s.ports.get(alice, first.port_id), 404, 'PortNotFound');
    });

    it('takes extra routes whose nexthop is on an attached subnet, and keeps that interface while they need it', async () => {
      const { subnetId } = await netWithSubnet(alice, '10.70.0.0/24');
      const r = await s.routers.create(alice, {});
      const id = r.id as string;
      const bad = [{ destination: '192.168.0.0/16', nexthop: '10.70.0.5' }];
      await rejects(s.routers.update(alice, id, { routes: bad }), 400, 'InvalidRoutes',
        "Invalid format for routes: [{'destination': '192.168.0.0/16', 'nexthop': '10.70.0.5'}], the nexthop is not connected with router");
      await s.routers.addInterface(alice, id, { subnet_id: subnetId });
      const withRoutes = await s.routers.update(alice, id, { routes: bad });
      assert.deepEqual(withRoutes.routes, bad);
      await rejects(s.routers.update(alice, id, { routes: [{ destination: '192.168.0.0/16', nexthop: '10.70.0.1' }] }), 400, 'InvalidRoutes', /the nexthop is used by router$/);
      await rejects(s.routers.update(alice, id, { routes: [{ destination: '192.168.0.0/16' }] }), 400, 'HTTPBadRequest', /Invalid input for routes/);
      await rejects(s.routers.removeInterface(alice, id, { subnet_id: subnetId }), 409, 'RouterInterfaceInUseByRoute',
        `Router interface for subnet ${subnetId} on router ${id} cannot be deleted, as it is required by one or more routes.`);
      const many = Array.from({ length: 31 }, (_, i) => ({ destination: `172.16.${i}.0/24`, nexthop: '10.70.0.5' }));
      await rejects(s.routers.update(alice, id, { routes: many }), 409, 'OverQuota', "Quota exceeded for resources: ['router_route'].");
      assert.deepEqual((await s.routers.update(alice, id, { routes: null })).routes, []);
      await s.routers.removeInterface(alice, id, { subnet_id: subnetId });
      // A nexthop on the gateway's network is connected too.
      await s.routers.update(alice, id, { external_gateway_info: { network_id: publicNet } });
      const viaGw = await s.routers.update(alice, id, { routes: [{ destination: '0.0.0.0/0', nexthop: '203.0.113.254' }] });
      assert.equal((viaGw.routes as unknown[]).length, 1);
      await rejects(s.routers.update(alice, id, { external_gateway_info: null }), 400, 'InvalidRoutes', /not connected with router/);
    });

    it('deletes a router with its gateway port; refuses one with interfaces', async () => {
      const { subnetId } = await netWithSubnet();
      const r = await s.routers.create(alice, { external_gateway_info: { network_id: publicNet } });
      const id = r.id as string;
      const gwPort = (await portsOf(id))[0].id as string;
      await rejects(s.ports.delete(admin, gwPort), 409, 'ServicePortInUse', `Port ${gwPort} cannot be deleted directly via the port API: has device owner network:router_gateway.`);
      const { port_id: portId } = await s.routers.addInterface(alice, id, { subnet_id: subnetId });
      await rejects(s.routers.delete(alice, id), 409, 'RouterInUse', `Router ${id} has ports still attached: ${portId}`);
      await s.routers.removeInterface(alice, id, { port_id: portId });
      await s.routers.delete(alice, id);
      await rejects(s.routers.get(alice, id), 404, 'RouterNotFound');
      await rejects(s.ports.get(admin, gwPort), 404, 'PortNotFound');
    });

    it('records router and port changes in the change feed, in the same transactions', async () => {
      const { subnetId } = await netWithSubnet();
      const start = await latestSeq(store.db);
      const r = await s.routers.create(alice, { name: 'fed' });
      const id = r.id as string;
      await s.routers.update(alice, id, { external_gateway_info: { network_id: publicNet } });
      const gwPort = (await portsOf(id))[0].id as string;
      const { port_id: portId } = await s.routers.addInterface(alice, id, { subnet_id: subnetId });
      await s.routers.removeInterface(alice, id, { subnet_id: subnetId });
      await s.routers.delete(alice, id);
      const changes = (await readChanges(store.db, start, 10_000)).map((c) => [c.resource_type, c.op, c.resource_id === id ? 'R' : c.resource_id === gwPort ? 'GW' : c.resource_id === portId ? 'IF' : c.resource_id]);
      assert.deepEqual(changes, [
        ['router', 'create', 'R'],
        ['port', 'create', 'GW'], ['router', 'update', 'R'],
        ['port', 'create', 'IF'], ['router', 'update', 'R'],
        ['port', 'delete', 'IF'], ['router', 'update', 'R'],
        ['port', 'delete', 'GW'], ['router', 'delete', 'R'],
      ]);
      const gwRows = (await readChanges(store.db, start, 10_000)).filter((c) => c.resource_id === gwPort);
      assert.ok(gwRows.every((c) => c.project_id === ''), 'the gateway port belongs to project \'\' from its creation');
    });

    it('adds two overlapping subnets concurrently: exactly one wins', async () => {
      for (let round = 0; round < 3; round++) {
        const a = await netWithSubnet(alice, `10.${200 + round}.0.0/24`);
        const b = await netWithSubnet(alice, `10.${200 + round}.0.0/16`);
        const r = await s.routers.create(alice, {});
        const results = await Promise.allSettled([
          s.routers.addInterface(alice, r.id as string, { subnet_id: a.subnetId }),
          s.routers.addInterface(alice, r.id as string, { subnet_id: b.subnetId }),
        ]);
        assert.equal(results.filter((x) => x.status === 'fulfilled').length, 1, JSON.stringify(results));
        const lost = results.find((x): x is PromiseRejectedResult => x.status === 'rejected')!;
        assert.equal((lost.reason as NeutronError).type, 'BadRequest', String(lost.reason));
        assert.match((lost.reason as NeutronError).message, /overlaps with cidr/);
        assert.equal((await portsOf(r.id as string)).length, 1);
      }
    });

    it('enforces the router quota', async () => {
      const p = caller('cccc3333cccc3333cccc3333cccc3333');
      await store.db.insertInto('quotas').values({ project_id: p.projectId, resource: 'router', hard_limit: 1 }).execute();
      await s.routers.create(p, {});
      await rejects(s.routers.create(p, {}), 409, 'OverQuota', "Quota exceeded for resources: ['router'].");
    });

    it('filters, sorts and tags routers like any collection', async () => {
      const p = caller('dddd4444dddd4444dddd4444dddd4444');
      const a = await s.routers.create(p, { name: 'alpha' });
      const b = await s.routers.create(p, { name: 'beta', admin_state_up: false });
      assert.deepEqual((await s.routers.list(p, query({ name: ['beta'] }))).items.map((x) => x.id), [b.id]);
      assert.deepEqual((await s.routers.list(p, query({ admin_state_up: ['false'] }))).items.map((x) => x.id), [b.id]);
      assert.deepEqual((await s.routers.list(p, { ...emptyQuery(), sort: [{ key: 'name', dir: 'desc' }] })).items.map((x) => x.id), [b.id, a.id]);
      await s.routers.addTag(p, a.id as string, 'blue');
      assert.deepEqual((await s.routers.list(p, query({ tags: ['blue'] }))).items.map((x) => x.id), [a.id]);
      assert.equal((await s.routers.get(p, a.id as string)).revision_number, 2);
    });
  });

  describe(`router actions over HTTP on ${backend.name}`, () => {
    let cloud: TestCloud;
    before(async () => { cloud = await startTestCloud(backend.name); });

    it('answers add/remove_router_interface with 200 and the interface body (router-add-interface-200.json)', async () => {
      const member = await cloud.principal('l3wire', 'member');
      const api = cloud.api(member.token);
      const net = (await api.post('/v2.0/networks', { network: { name: 'n' } })).body.network;
      const sub = (await api.post('/v2.0/subnets', { subnet: { network_id: net.id, ip_version: 4, cidr: '10.10.0.0/24' } })).body.subnet;
      const created = await api.post('/v2.0/routers', { router: { name: 'wire-router' } });
      assert.equal(created.status, 201);
      const router: Json = created.body.router;
      assert.deepEqual(Object.keys(router), ROUTER_KEYS);
      const add = await api.put(`/v2.0/routers/${router.id}/add_router_interface`, { subnet_id: sub.id });
      assert.equal(add.status, 200, add.text);
      assert.deepEqual(Object.keys(add.body), ['id', 'tenant_id', 'port_id', 'network_id', 'subnet_id', 'subnet_ids', 'project_id']);
      assert.deepEqual({ ...add.body, port_id: 'P' }, {
        id: router.id, tenant_id: member.projectId, port_id: 'P', network_id: net.id, subnet_id: sub.id, subnet_ids: [sub.id], project_id: member.projectId,
      });
      const ports = (await api.get(`/v2.0/ports?device_id=${router.id}`)).body.ports;
      assert.deepEqual(ports.map((p: Json) => [p.id, p.device_owner, p.port_security_enabled, p.security_groups, p.fixed_ips[0].ip_address]),
        [[add.body.port_id, 'network:router_interface', false, [], '10.10.0.1']]);
      const del = await api.del(`/v2.0/ports/${add.body.port_id}`);
      assert.equal(del.status, 409);
      assert.equal(del.body.NeutronError.type, 'ServicePortInUse');
      const bad = await api.put(`/v2.0/routers/${router.id}/add_router_interface`, {});
      assert.deepEqual([bad.status, bad.body], [400, { NeutronError: { type: 'BadRequest', message: 'Bad router request: Either subnet_id or port_id must be specified.', detail: '' } }]);
      const missing = await api.put(`/v2.0/routers/${MISSING}/add_router_interface`, { subnet_id: sub.id });
      assert.deepEqual([missing.status, missing.body.NeutronError.type, missing.body.NeutronError.message], [404, 'RouterNotFound', `Router ${MISSING} could not be found`]);
      const remove = await api.put(`/v2.0/routers/${router.id}/remove_router_interface`, { subnet_id: sub.id });
      assert.equal(remove.status, 200, remove.text);
      assert.deepEqual(remove.body, add.body);
      const again = await api.put(`/v2.0/routers/${router.id}/remove_router_interface`, { subnet_id: sub.id });
      assert.deepEqual([again.status, again.body.NeutronError.type], [404, 'RouterInterfaceNotFoundForSubnet']);
      assert.equal((await api.del(`/v2.0/routers/${router.id}`)).status, 204);
    });
  });
});

