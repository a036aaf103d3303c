import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { forEachBackend } from './support/backends.ts';
import { caller } from './support/callers.ts';
import { createServices, type Services } from '../src/services/index.ts';
import { emptyQuery, type Wire } from '../src/services/resource-store.ts';
import { latestSeq, readChanges } from '../src/services/change-feed.ts';
import { chooseRouter, fixedIpForAssociation } from '../src/services/floating-ips.ts';
import type { NeutronError } from '../src/errors.ts';
import { rejectsNeutron } from './support/assertions.ts';
import type { Store } from '../src/store/database.ts';

const alice = caller('aaaa1111aaaa1111aaaa1111aaaa1111');
const bob = caller('bbbb2222bbbb2222bbbb2222bbbb2222');
const admin = caller('adad0000adad0000adad0000adad0000', 'admin');
const MISSING = '0b6b5d1c-9e5f-4f4e-9a4a-000000000000';

/** Exact messages matter here, so a string is matched whole (the shared helper takes patterns). */
const rejects = (p: Promise<unknown>, status: number, type: string, message?: RegExp | string) =>
  rejectsNeutron(p, status, type, typeof message === 'string' ? new RegExp(`^${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) : message);

const query = (filters: Record<string, string[]>) => ({ ...emptyQuery(), filters });
type FixedIps = Array<{ subnet_id: string; ip_address: string }>;

/** floatingip-create-201.json, in Neutron's order. */
const FIP_KEYS = [
  'id', 'tenant_id', 'floating_ip_address', 'floating_network_id', 'router_id', 'port_id', 'fixed_ip_address', 'status',
  'project_id', 'description', 'port_details', 'tags', 'created_at', 'updated_at', 'revision_number',
];
const PORT_DETAILS_KEYS = ['name', 'network_id', 'mac_address', 'admin_state_up', 'status', 'device_id', 'device_owner'];

describe('floating IP rules (pure)', () => {
  it('prefers the router on the subnet\'s gateway address, else the first', () => {
    const c = [{ router_id: 'r1', interface_ip: '10.0.0.7' }, { router_id: 'r2', interface_ip: '10.0.0.1' }];
    assert.equal(chooseRouter(c, '10.0.0.1'), 'r2');
    assert.equal(chooseRouter(c, '10.0.0.99'), 'r1');
    assert.equal(chooseRouter(c, null), 'r1');
    assert.equal(chooseRouter([], '10.0.0.1'), null);
  });

  it('picks the fixed address as Neutron does, with its messages', () => {
    const one = [{ subnet_id: 's4', ip_address: '10.0.0.5' }, { subnet_id: 's6', ip_address: 'fd00::5' }];
    assert.deepEqual(fixedIpForAssociation('P', one, undefined), one[0]);
    assert.deepEqual(fixedIpForAssociation('P', one, '10.0.0.5'), one[0]);
    assert.throws(() => fixedIpForAssociation('P', one, 'fd00::5'), /Bad floatingip request: Cannot process floating IP association with fd00::5, since that is not an IPv4 address\./);
    assert.throws(() => fixedIpForAssociation('P', one, '10.0.0.6'), /Bad floatingip request: Port P does not have fixed ip 10.0.0.6\./);
    assert.throws(() => fixedIpForAssociation('P', [one[1]], null), /Cannot add floating IP to port P that has no fixed IPv4 addresses/);
    const two = [...one, { subnet_id: 's4b', ip_address: '10.1.0.5' }];
    assert.throws(() => fixedIpForAssociation('P', two, null),
      /^Error: Bad floatingip request: Port P has multiple fixed IPv4 addresses. {2}Must provide a specific IPv4 address when assigning a floating IP\.$/);
    assert.deepEqual(fixedIpForAssociation('P', two, '10.1.0.5'), two[2]);
  });
});

forEachBackend((backend) => {
  describe(`floating IPs on ${backend.name}`, () => {
    let s: Services;
    let store: Store;
    let publicNet: string;
    let publicSubnet: string;
    before(async () => {
      store = await backend.openStore();
      s = createServices(store);
      for (const p of [alice, bob]) {
        await store.db.insertInto('quotas').values([
          { project_id: p.projectId, resource: 'router', hard_limit: -1 },
          { project_id: p.projectId, resource: 'floatingip', hard_limit: -1 },
        ]).execute();
      }
      const pub = await s.networks.create(admin, { name: 'public', 'router:external': true });
      publicNet = pub.id as string;
      publicSubnet = (await s.subnets.create(admin, { network_id: publicNet, ip_version: 4, cidr: '203.0.113.0/24', enable_dhcp: false })).id as string;
    });

    let counter = 0;
    /** A project network with a subnet, a router from it to public, and a port on it. */
    async function topology(who = alice) {
      const n = counter++;
      const network = await s.networks.create(who, { name: `n${n}` });
      const subnet = await s.subnets.create(who, { network_id: network.id, ip_version: 4, cidr: `10.${n}.0.0/24` });
      const router = await s.routers.create(who, { name: `r${n}`, external_gateway_info: { network_id: publicNet } });
      await s.routers.addInterface(who, router.id as string, { subnet_id: subnet.id });
      const port = await s.ports.create(who, { network_id: network.id, name: `vm${n}` });
      return {
        networkId: network.id as string, subnetId: subnet.id as string, routerId: router.id as string,
        port, portId: port.id as string, fixedIp: (port.fixed_ips as FixedIps)[0].ip_address,
      };
    }

    it('creates associated, with the attributes of a real Neutron (floatingip-create-201.json)', async () => {
      const t = await topology();
      const fip = await s.floatingIps.create(alice, { floating_network_id: publicNet, port_id: t.portId });
      assert.deepEqual(Object.keys(fip), FIP_KEYS);
      assert.match(fip.floating_ip_address as string, /^203\.0\.113\.\d+$/);
      assert.deepEqual(
        [fip.floating_network_id, fip.router_id, fip.port_id, fip.fixed_ip_address, fip.status, fip.revision_number, fip.description],
        [publicNet, t.routerId, t.portId, t.fixedIp, 'DOWN', 0, ''],
      );
      assert.deepEqual([fip.project_id, fip.tenant_id], [alice.projectId, alice.projectId]);
      const details = fip.port_details as Wire;
      assert.deepEqual(Object.keys(details), PORT_DETAILS_KEYS);
      assert.deepEqual(details, {
        name: t.port.name, network_id: t.networkId, mac_address: t.port.mac_address, admin_state_up: true,
        status: 'DOWN', device_id: '', device_owner: '',
      });
      assert.deepEqual(await s.floatingIps.get(alice, fip.id as string), fip);
      // The address is held by a port Neutron owns: project '', device_id the FIP.
      const [holder] = (await s.ports.list(admin, query({ device_id: [fip.id as string] }))).items;
      assert.deepEqual([holder.device_owner, holder.project_id, holder.network_id], ['network:floatingip', '', publicNet]);
      assert.deepEqual((holder.fixed_ips as FixedIps).map((f) => f.ip_address), [fip.floating_ip_address]);
      await rejects(s.ports.delete(admin, holder.id as string), 409, 'ServicePortInUse',
        `Port ${holder.id} cannot be deleted directly via the port API: has device owner network:floatingip.`);
      const plain = await s.floatingIps.create(alice, { floating_network_id: publicNet, description: 'spare' });
      assert.deepEqual([plain.port_id, plain.fixed_ip_address, plain.router_id, plain.port_details], [null, null, null, null]);
    });

    it('refuses networks that are missing, not external or without IPv4, and admin-only addresses', async () => {
      await rejects(s.floatingIps.create(alice, {}), 400, 'HTTPBadRequest', "Failed to parse request. Required attribute 'floating_network_id' not specified");
      await rejects(s.floatingIps.create(alice, { floating_network_id: MISSING }), 404, 'NetworkNotFound', `Network ${MISSING} could not be found.`);
      const own = await s.networks.create(alice, {});
      await rejects(s.floatingIps.create(alice, { floating_network_id: own.id }), 400, 'BadRequest',
        `Bad floatingip request: Network ${own.id} is not a valid external network.`);
      const v6only = await s.networks.create(admin, { 'router:external': true });
      await s.subnets.create(admin, { network_id: v6only.id, ip_version: 6, cidr: 'fd00:ee::/64' });
      await rejects(s.floatingIps.create(alice, { floating_network_id: v6only.id }), 400, 'BadRequest',
        `Bad floatingip request: Network ${v6only.id} does not contain any IPv4 subnet.`);
      await rejects(s.floatingIps.create(alice, { floating_network_id: publicNet, floating_ip_address: '203.0.113.77' }), 403, 'PolicyNotAuthorized',
        '(rule:create_floatingip and rule:create_floatingip:floating_ip_address) is disallowed by policy');
      const chosen = await s.floatingIps.create(admin, { floating_network_id: publicNet, floating_ip_address: '203.0.113.77', tenant_id: alice.projectId });
      assert.deepEqual([chosen.floating_ip_address, chosen.project_id], ['203.0.113.77', alice.projectId]);
      await rejects(s.floatingIps.create(admin, { floating_network_id: publicNet, floating_ip_address: '203.0.113.77' }), 409, 'IpAddressAlreadyAllocated');
      const bySubnet = await s.floatingIps.create(alice, { floating_network_id: publicNet, subnet_id: publicSubnet });
      assert.match(bySubnet.floating_ip_address as string, /^203\.0\.113\./);
      assert.ok(!('subnet_id' in bySubnet), 'subnet_id is input only');
    });

    it('refuses associations Neutron refuses', async () => {
      const t = await topology();
      const fip = await s.floatingIps.create(alice, { floating_network_id: publicNet });
      const id = fip.id as string;
      await rejects(s.floatingIps.update(alice, id, { port_id: MISSING }), 404, 'PortNotFound');
      const theirs = await topology(bob);
      await rejects(s.floatingIps.update(alice, id, { port_id: theirs.portId }), 404, 'PortNotFound');
      await rejects(s.floatingIps.update(alice, id, { fixed_ip_address: t.fixedIp }), 400, 'BadRequest',
        'Bad floatingip request: fixed_ip_address cannot be specified without a port_id.');
      await rejects(s.floatingIps.update(alice, id, { port_id: t.portId, fixed_ip_address: '10.250.0.1' }), 400, 'BadRequest',
        `Bad floatingip request: Port ${t.portId} does not have fixed ip 10.250.0.1.`);
      // No router connects this subnet to the external network.
      const lonely = await s.networks.create(alice, {});
      const lonelySubnet = await s.subnets.create(alice, { network_id: lonely.id, ip_version: 4, cidr: '10.251.0.0/24' });
      const lonelyPort = await s.ports.create(alice, { network_id: lonely.id });
      await rejects(s.floatingIps.update(alice, id, { port_id: lonelyPort.id }), 404, 'ExternalGatewayForFloatingIPNotFound',
        `External network ${publicNet} is not reachable from subnet ${lonelySubnet.id}.  Therefore, cannot associate Port ${lonelyPort.id} with a Floating IP.`);
      // Two IPv4 addresses: say which.
      const second = await s.subnets.create(alice, { network_id: t.networkId, ip_version: 4, cidr: '10.252.0.0/24' });
      const multi = await s.ports.create(alice, { network_id: t.networkId, fixed_ips: [{ subnet_id: t.subnetId }, { subnet_id: second.id }] });
      await rejects(s.floatingIps.update(alice, id, { port_id: multi.id }), 400, 'BadRequest',
        `Bad floatingip request: Port ${multi.id} has multiple fixed IPv4 addresses.  Must provide a specific IPv4 address when assigning a floating IP.`);
      const onFirst = (multi.fixed_ips as FixedIps).find((f) => f.subnet_id === t.subnetId)!.ip_address;
      const ok = await s.floatingIps.update(alice, id, { port_id: multi.id, fixed_ip_address: onFirst });
      assert.deepEqual([ok.port_id, ok.fixed_ip_address, ok.router_id], [multi.id, onFirst, t.routerId]);
      // One fixed IP holds one floating IP.
      const other = await s.floatingIps.create(alice, { floating_network_id: publicNet });
      await rejects(s.floatingIps.update(alice, other.id as string, { port_id: multi.id, fixed_ip_address: onFirst }), 409, 'FloatingIPPortAlreadyAssociated',
        `Cannot associate floating IP ${other.floating_ip_address} (${other.id}) with port ${multi.id} using fixed IP ${onFirst}, as that fixed IP already has a floating IP on external network ${publicNet}.`);
      await rejects(s.floatingIps.create(alice, { floating_network_id: publicNet, port_id: multi.id, fixed_ip_address: onFirst }), 409, 'FloatingIPPortAlreadyAssociated');
      // A DHCP port cannot hold one; an admin may map a member's port from another project's FIP.
      const dhcp = await s.ports.create(admin, { network_id: t.networkId, device_owner: 'network:dhcp', tenant_id: alice.projectId });
      await rejects(s.floatingIps.update(alice, other.id as string, { port_id: dhcp.id }), 400, 'BadRequest', `Bad floatingip request: Port ${dhcp.id} is unable to be assigned a floating IP.`);
    });

    it('associates, moves and disassociates on update, bumping the revision; finds the router on the gateway address first', async () => {
      const t = await topology();
      const fip = await s.floatingIps.create(alice, { floating_network_id: publicNet });
      const id = fip.id as string;
      const on = await s.floatingIps.update(alice, id, { port_id: t.portId });
      assert.deepEqual([on.port_id, on.fixed_ip_address, on.router_id, on.revision_number], [t.portId, t.fixedIp, t.routerId, 1]);
      const off = await s.floatingIps.update(alice, id, { port_id: null });
      assert.deepEqual([off.port_id, off.fixed_ip_address, off.router_id, off.port_details, off.revision_number], [null, null, null, null, 2]);
      const described = await s.floatingIps.update(alice, id, { description: 'd' });
      assert.deepEqual([described.description, described.port_id], ['d', null]);
      // A second router on the same subnet through an ordinary port: the gateway-address router still wins.
      const side = await s.routers.create(alice, { external_gateway_info: { network_id: publicNet } });
      const sidePort = await s.ports.create(alice, { network_id: t.networkId });
      await s.routers.addInterface(alice, side.id as string, { port_id: sidePort.id });
      const again = await s.floatingIps.update(alice, id, { port_id: t.portId });
      assert.equal(again.router_id, t.routerId);
      await s.floatingIps.update(alice, id, { port_id: null });
      await s.routers.removeInterface(alice, t.routerId, { subnet_id: t.subnetId });
      const viaSide = await s.floatingIps.update(alice, id, { port_id: t.portId });
      assert.equal(viaSide.router_id, side.id, 'else any router that connects them');
    });

    it('keeps what a floating IP needs: the router interface and the gateway', async () => {
      const t = await topology();
      const fip = await s.floatingIps.create(alice, { floating_network_id: publicNet, port_id: t.portId });
      await rejects(s.routers.removeInterface(alice, t.routerId, { subnet_id: t.subnetId }), 409, 'RouterInterfaceInUseByFloatingIP',
        `Router interface for subnet ${t.subnetId} on router ${t.routerId} cannot be deleted, as it is required by one or more floating IPs.`);
      await rejects(s.routers.update(alice, t.routerId, { external_gateway_info: null }), 409, 'RouterExternalGatewayInUseByFloatingIp',
        `Gateway cannot be updated for router ${t.routerId}, since a gateway to external network ${publicNet} is required by one or more floating IPs.`);
      await s.floatingIps.update(alice, fip.id as string, { port_id: null });
      await s.routers.removeInterface(alice, t.routerId, { subnet_id: t.subnetId });
      await s.routers.update(alice, t.routerId, { external_gateway_info: null });
    });

    it('disassociates when the port goes, and deletes its address port with it', async () => {
      const t = await topology();
      const fip = await s.floatingIps.create(alice, { floating_network_id: publicNet, port_id: t.portId });
      const id = fip.id as string;
      const start = await latestSeq(store.db);
      await s.ports.delete(alice, t.portId);
      const after = await s.floatingIps.get(alice, id);
      assert.deepEqual([after.port_id, after.fixed_ip_address, after.router_id, after.port_details, after.revision_number], [null, null, null, null, 1]);
      const feed = await readChanges(store.db, start);
      assert.deepEqual(feed.map((c) => [c.resource_type, c.op, c.resource_id]), [['floatingip', 'update', id], ['port', 'delete', t.portId]]);
      assert.equal(feed[0].revision_number, 1);
      const holder = (await s.ports.list(admin, query({ device_id: [id] }))).items[0].id as string;
      await s.floatingIps.delete(alice, id);
      await rejects(s.floatingIps.get(alice, id), 404, 'FloatingIPNotFound', `Floating IP ${id} could not be found`);
      await rejects(s.ports.get(admin, holder), 404, 'PortNotFound');
    });

    it('records floating IP and port changes in the feed', async () => {
      const t = await topology();
      const start = await latestSeq(store.db);
      const fip = await s.floatingIps.create(alice, { floating_network_id: publicNet });
      const id = fip.id as string;
      await s.floatingIps.update(alice, id, { port_id: t.portId });
      await s.floatingIps.delete(alice, id);
      const feed = (await readChanges(store.db, start)).map((c) => [c.resource_type, c.op, c.resource_id === id ? 'F' : 'P', c.project_id]);
      assert.deepEqual(feed, [
        ['port', 'create', 'P', ''], ['floatingip', 'create', 'F', alice.projectId],
        ['floatingip', 'update', 'F', alice.projectId],
        ['port', 'delete', 'P', ''], ['floatingip', 'delete', 'F', alice.projectId],
      ]);
    });

    it('shows a project its own floating IPs only (404 FloatingIPNotFound), admins all; filters', async () => {
      const t = await topology();
      const fip = await s.floatingIps.create(alice, { floating_network_id: publicNet, port_id: t.portId });
      const id = fip.id as string;
      await rejects(s.floatingIps.get(bob, id), 404, 'FloatingIPNotFound', `Floating IP ${id} could not be found`);
      await rejects(s.floatingIps.update(bob, id, { port_id: null }), 404, 'FloatingIPNotFound');
      await rejects(s.floatingIps.delete(bob, id), 404, 'FloatingIPNotFound');
      assert.equal((await s.floatingIps.list(bob, emptyQuery())).items.some((f) => f.id === id), false);
      assert.equal((await s.floatingIps.get(admin, id)).id, id);
      const ids = async (f: Record<string, string[]>) => (await s.floatingIps.list(alice, query(f))).items.map((x) => x.id);
      assert.deepEqual(await ids({ floating_ip_address: [fip.floating_ip_address as string] }), [id]);
      assert.deepEqual(await ids({ port_id: [t.portId] }), [id]);
      assert.deepEqual(await ids({ router_id: [t.routerId] }), [id]);
      assert.deepEqual(await ids({ fixed_ip_address: [t.fixedIp] }), [id]);
      assert.ok((await ids({ floating_network_id: [publicNet], status: ['DOWN'] })).includes(id));
      assert.deepEqual(await ids({ status: ['ACTIVE'] }), []);
    });

    it('two concurrent associations of one fixed IP: exactly one wins', async () => {
      for (let round = 0; round < 3; round++) {
        const t = await topology();
        const a = await s.floatingIps.create(alice, { floating_network_id: publicNet });
        const b = await s.floatingIps.create(alice, { floating_network_id: publicNet });
        const results = await Promise.allSettled([
          s.floatingIps.update(alice, a.id as string, { port_id: t.portId }),
          s.floatingIps.update(alice, b.id as string, { port_id: t.portId }),
          s.floatingIps.create(alice, { floating_network_id: publicNet, port_id: t.portId }),
        ]);
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(results));
        for (const r of results) {
          if (r.status === 'rejected') assert.equal((r.reason as NeutronError).type, 'FloatingIPPortAlreadyAssociated', String(r.reason));
        }
        assert.equal((await s.floatingIps.list(alice, query({ port_id: [t.portId] }))).items.length, 1);
      }
    });

    it('an interface removal racing an association: never a floating IP without its interface', async () => {
      for (let round = 0; round < 3; round++) {
        const t = await topology();
        const fip = await s.floatingIps.create(alice, { floating_network_id: publicNet });
        const [assoc, removal] = await Promise.allSettled([
          s.floatingIps.update(alice, fip.id as string, { port_id: t.portId }),
          s.routers.removeInterface(alice, t.routerId, { subnet_id: t.subnetId }),
        ]);
        assert.ok((assoc.status === 'fulfilled') !== (removal.status === 'fulfilled'), `exactly one: ${JSON.stringify([assoc, removal])}`);
        const now = await s.floatingIps.get(alice, fip.id as string);
        const interfaces = (await s.ports.list(admin, query({ device_id: [t.routerId], device_owner: ['network:router_interface'] }))).items;
        assert.equal(now.router_id !== null, interfaces.length === 1);
      }
    });

    it('enforces the floatingip quota', async () => {
      const p = caller('eeee5555eeee5555eeee5555eeee5555');
      await store.db.insertInto('quotas').values({ project_id: p.projectId, resource: 'floatingip', hard_limit: 1 }).execute();
      await s.floatingIps.create(p, { floating_network_id: publicNet });
      await rejects(s.floatingIps.create(p, { floating_network_id: publicNet }), 409, 'OverQuota', "Quota exceeded for resources: ['floatingip'].");
    });
  });
});
