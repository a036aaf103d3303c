import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { NeutronError } from '../src/errors.ts';
import { forEachBackend } from './support/backends.ts';
import { rejectsNeutron as rejects } from './support/assertions.ts';
import { caller } from './support/callers.ts';
import { createServices, type Services } from '../src/services/index.ts';
import { emptyQuery, type Wire } from '../src/services/resource-store.ts';
import { eui64Address, formatIp, parseIp, parseNet, pickFreeAddress, subnetInfo } from '../src/services/ipam.ts';

const alice = caller('aaaa1111aaaa1111aaaa1111aaaa1111');
const bob = caller('bbbb2222bbbb2222bbbb2222bbbb2222');
const carol = caller('cccc3333cccc3333cccc3333cccc3333');
const admin = caller('adad0000adad0000adad0000adad0000', 'admin');


type FixedIps = Array<{ subnet_id: string; ip_address: string }>;
const ipsOf = (p: Wire) => (p.fixed_ips as FixedIps).map((f) => f.ip_address);
const query = (filters: Record<string, string[]>) => ({ ...emptyQuery(), filters });

forEachBackend((backend) => {
  describe(`ports on ${backend.name}`, () => {
    let s: Services;
    before(async () => { s = createServices(await backend.openStore()); });

    /** A network with one IPv4 subnet. */
    async function netWithSubnet(who = alice, cidr = '10.50.0.0/24', netBody: Record<string, unknown> = {}) {
      const network = await s.networks.create(who, { name: 'n', ...netBody });
      const subnet = await s.subnets.create(who.isAdmin && netBody.tenant_id ? admin : who, { network_id: network.id, ip_version: 4, cidr });
      return { networkId: network.id as string, subnetId: subnet.id as string };
    }
    const countRows = async (table: 'ports' | 'ip_allocations', networkId: string) =>
      Number((await s.ports.store.db.selectFrom(table).select((eb) => eb.fn.countAll().as('n')).where('network_id', '=', networkId).executeTakeFirstOrThrow()).n);

    it('creates with the attributes, order and defaults of a real Neutron', async () => {
      const { networkId, subnetId } = await netWithSubnet();
      const p = await s.ports.create(alice, { name: 'wire-port', network_id: networkId });
      assert.deepEqual(Object.keys(p), [
        'id', 'name', 'network_id', 'tenant_id', 'mac_address', 'admin_state_up', 'status', 'device_id', 'device_owner',
        'fixed_ips', 'project_id', 'port_security_enabled', 'security_groups', 'binding:vnic_type', 'allowed_address_pairs',
        'extra_dhcp_opts', 'description', 'tags', 'created_at', 'updated_at', 'revision_number',
      ]);
      assert.match(p.mac_address as string, /^fa:16:3e(:[0-9a-f]{2}){3}$/);
      assert.equal(p.status, 'DOWN');
      assert.equal(p.revision_number, 1);
      assert.equal(p.admin_state_up, true);
      assert.equal(p.port_security_enabled, true);
      assert.equal(p['binding:vnic_type'], 'normal');
      assert.deepEqual([p.device_id, p.device_owner, p.description], ['', '', '']);
      assert.deepEqual([p.allowed_address_pairs, p.extra_dhcp_opts, p.tags], [[], [], []]);
      const [fixed] = p.fixed_ips as FixedIps;
      assert.equal(fixed.subnet_id, subnetId);
      const last = Number(fixed.ip_address.split('.')[3]);
      assert.ok(fixed.ip_address.startsWith('10.50.0.') && last >= 2 && last <= 254, fixed.ip_address);
      // The project's default security group, as Neutron applies it.
      const groups = await s.securityGroups.list(alice, query({ name: ['default'] }));
      assert.deepEqual(p.security_groups, [groups.items[0].id]);
      const seen = await s.ports.get(admin, p.id as string);
      assert.deepEqual(
        [seen['binding:host_id'], seen['binding:profile'], seen['binding:vif_details'], seen['binding:vif_type']],
        ['', {}, {}, 'unbound'],
      );
    });

    it('needs a visible network (wire 404)', async () => {
      await rejects(s.ports.create(alice, { network_id: '0b6b5d1c-9e5f-4f4e-9a4a-000000000000' }), 404, 'NetworkNotFound',
        /^Network 0b6b5d1c-9e5f-4f4e-9a4a-000000000000 could not be found.$/);
      const { networkId } = await netWithSubnet(bob);
      await rejects(s.ports.create(alice, { network_id: networkId }), 404, 'NetworkNotFound');
      await rejects(s.ports.create(alice, {}), 400, 'HTTPBadRequest', /Required attribute 'network_id' not specified/);
      const external = await s.networks.create(admin, { 'router:external': true });
      await rejects(s.ports.create(alice, { network_id: external.id }), 403, 'HTTPForbidden', /not allowed to create port on this network/);
    });

    it('allocates requested addresses with Neutron errors', async () => {
      const { networkId, subnetId } = await netWithSubnet(alice, '10.51.0.0/24');
      const other = await netWithSubnet(alice, '10.52.0.0/24');
      const bySubnet = await s.ports.create(alice, { network_id: networkId, fixed_ips: [{ subnet_id: subnetId }] });
      assert.equal((bySubnet.fixed_ips as FixedIps)[0].subnet_id, subnetId);
      const byIp = await s.ports.create(alice, { network_id: networkId, fixed_ips: [{ ip_address: '10.51.0.178' }] });
      assert.deepEqual(byIp.fixed_ips, [{ subnet_id: subnetId, ip_address: '10.51.0.178' }]);
      await rejects(s.ports.create(alice, { network_id: networkId, fixed_ips: [{ subnet_id: subnetId, ip_address: '10.51.0.178' }] }), 409,
        'IpAddressAlreadyAllocated', new RegExp(`^IP address 10.51.0.178 already allocated in subnet ${subnetId}$`));
      await rejects(s.ports.create(alice, { network_id: networkId, fixed_ips: [{ subnet_id: subnetId, ip_address: '10.52.0.5' }] }), 400,
        'InvalidIpForSubnet', /^IP address 10.52.0.5 is not a valid IP for the specified subnet.$/);
      await rejects(s.ports.create(alice, { network_id: networkId, fixed_ips: [{ ip_address: '10.52.0.5' }] }), 400,
        'InvalidIpForNetwork', /^IP address 10.52.0.5 is not a valid IP for any of the subnets on the specified network.$/);
      await rejects(s.ports.create(alice, { network_id: networkId, fixed_ips: [{ subnet_id: other.subnetId }] }), 400, 'InvalidInput',
        new RegExp(`because fixed_ips included invalid subnet ${other.subnetId}`));
      await rejects(s.ports.create(alice, { network_id: networkId, fixed_ips: [{ subnet_id: '11111111-2222-3333-4444-555555555555' }] }), 404, 'SubnetNotFound');
      for (const edge of ['10.51.0.0', '10.51.0.255']) {
        await rejects(s.ports.create(alice, { network_id: networkId, fixed_ips: [{ ip_address: edge }] }), 400, 'InvalidIpForNetwork');
      }
      await rejects(s.ports.create(alice, { network_id: networkId, fixed_ips: [{}] }), 400, 'InvalidInput', /requires subnet_id or ip_address/);
      await rejects(s.ports.create(alice, { network_id: networkId, fixed_ips: [{ ip_address: '10.51.0.9' }, { ip_address: '10.51.0.9' }] }), 400,
        'HTTPBadRequest', /Duplicate IP address '10.51.0.9'/);
      // Inside the cidr but outside the pools is fine, and so is the gateway address (Neutron does not reserve it).
      await s.subnets.update(alice, subnetId, { allocation_pools: [{ start: '10.51.0.100', end: '10.51.0.200' }] });
      const outside = await s.ports.create(alice, { network_id: networkId, fixed_ips: [{ ip_address: '10.51.0.20' }] });
      assert.deepEqual(ipsOf(outside), ['10.51.0.20']);
      const gw = await s.ports.create(alice, { network_id: networkId, device_owner: 'network:router_interface', fixed_ips: [{ ip_address: '10.51.0.1' }] });
      assert.deepEqual(ipsOf(gw), ['10.51.0.1']);
      const none = await s.ports.create(alice, { network_id: networkId, fixed_ips: [] });
      assert.deepEqual(none.fixed_ips, []);
      const bare = await s.networks.create(alice, {});
      assert.deepEqual((await s.ports.create(alice, { network_id: bare.id })).fixed_ips, [], 'no subnets, no addresses');
      await rejects(s.ports.create(alice, { network_id: bare.id, fixed_ips: [{ ip_address: '10.0.0.5' }] }), 400, 'InvalidInput', /requires subnets for network/);
    });

    it('50 concurrent creates on a /28 get unique addresses; the rest IpAddressGenerationFailure', async () => {
      const { networkId } = await netWithSubnet(alice, '10.77.0.0/28');
      await s.ports.create(alice, { network_id: networkId, fixed_ips: [] }); // the default security group exists before the race
      const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => s.ports.create(alice, { network_id: networkId, name: `p${i}` })));
      const made = results.filter((r): r is PromiseFulfilledResult<Wire> => r.status === 'fulfilled').map((r) => r.value);
      const addresses = made.flatMap(ipsOf);
      assert.equal(made.length, 13, '16 addresses minus network, broadcast and gateway');
      assert.equal(new Set(addresses).size, 13);
      for (const a of addresses) assert.ok(Number(a.split('.')[3]) >= 2 && Number(a.split('.')[3]) <= 14, a);
      for (const r of results) {
        if (r.status === 'rejected') {
          assert.equal((r.reason as NeutronError).type, 'IpAddressGenerationFailure', String(r.reason));
          assert.equal((r.reason as NeutronError).status, 409);
          assert.equal((r.reason as NeutronError).message, `No more IP addresses available on network ${networkId}.`);
        }
      }
      // A deleted port's address is free again.
      const freed = ipsOf(made[5])[0];
      await s.ports.delete(alice, made[5].id as string);
      const again = await s.ports.create(alice, { network_id: networkId });
      assert.deepEqual(ipsOf(again), [freed]);
      await rejects(s.ports.create(alice, { network_id: networkId }), 409, 'IpAddressGenerationFailure');
      assert.equal(await countRows('ip_allocations', networkId), 13);
    });

    it('IPv6: EUI-64 on SLAAC subnets, pool allocation on stateful ones', async () => {
      const network = await s.networks.create(alice, {});
      const networkId = network.id as string;
      // .9 and .10 are asked for below: keep them out of the pool random allocation draws from.
      const v4 = await s.subnets.create(alice, { network_id: networkId, ip_version: 4, cidr: '10.60.0.0/24', allocation_pools: [{ start: '10.60.0.100', end: '10.60.0.200' }] });
      const stateful = await s.subnets.create(alice, { network_id: networkId, ip_version: 6, cidr: 'fd00:60:1::/64', ipv6_address_mode: 'dhcpv6-stateful', ipv6_ra_mode: 'dhcpv6-stateful' });
      const slaac = await s.subnets.create(alice, { network_id: networkId, ip_version: 6, cidr: 'fd00:60:2::/64', ipv6_address_mode: 'slaac', ipv6_ra_mode: 'slaac' });
      const p = await s.ports.create(alice, { network_id: networkId, mac_address: 'fa:16:3e:5d:c8:ff' });
      const fixed = p.fixed_ips as FixedIps;
      assert.equal(fixed[0].subnet_id, v4.id, 'IPv4 first');
      const bySubnet = new Map(fixed.map((f) => [f.subnet_id, f.ip_address]));
      assert.equal(bySubnet.size, 3);
      assert.equal(bySubnet.get(slaac.id as string), 'fd00:60:2:0:f816:3eff:fe5d:c8ff');
      assert.equal(bySubnet.get(slaac.id as string), formatIp(6, eui64Address(parseNet('fd00:60:2::/64')!, 'fa:16:3e:5d:c8:ff')));
      const fromPool = bySubnet.get(stateful.id as string)!;
      assert.ok(parseIp(fromPool)!.value > parseIp('fd00:60:1::')!.value && fromPool.startsWith('fd00:60:1:'), fromPool);
      await rejects(s.ports.create(alice, { network_id: networkId, fixed_ips: [{ subnet_id: slaac.id, ip_address: 'fd00:60:2::5' }] }), 400,
        'AllocationOnAutoAddressSubnet', /cannot be directly assigned to a port on subnet .* as the subnet is configured for automatic addresses/);
      const own = formatIp(6, eui64Address(parseNet('fd00:60:2::/64')!, 'fa:16:3e:00:00:aa'));
      const explicit = await s.ports.create(alice, { network_id: networkId, mac_address: 'fa:16:3e:00:00:aa', fixed_ips: [{ subnet_id: slaac.id, ip_address: own }] });
      assert.deepEqual(ipsOf(explicit), [own], 'its own EUI-64 address may be asked for, and is given once');
      const only4 = await s.ports.create(alice, { network_id: networkId, fixed_ips: [{ subnet_id: v4.id }] });
      assert.deepEqual((only4.fixed_ips as FixedIps).map((f) => f.subnet_id), [v4.id, slaac.id], 'SLAAC addresses come with any request');
      // Within a subnet, numeric order (10.60.0.9 before 10.60.0.10).
      const two = await s.ports.create(alice, { network_id: networkId, fixed_ips: [{ ip_address: '10.60.0.10' }, { ip_address: '10.60.0.9' }] });
      assert.deepEqual(ipsOf(two).slice(0, 2), ['10.60.0.9', '10.60.0.10']);
      const router = await s.ports.create(alice, { network_id: networkId, device_owner: 'network:router_interface', fixed_ips: [{ subnet_id: slaac.id, ip_address: 'fd00:60:2::1' }] });
      assert.deepEqual(ipsOf(router), ['fd00:60:2::1'], 'routers may take any address and get no EUI-64 one');
      const stateful2 = await s.ports.create(alice, { network_id: networkId, fixed_ips: [{ ip_address: 'fd00:60:1::abcd' }] });
      assert.ok(ipsOf(stateful2).includes('fd00:60:1::abcd'));
      assert.equal(ipsOf(stateful2).length, 2, 'and the SLAAC one');
    });

    it('bulk create is all-or-nothing, addresses included', async () => {
      const { networkId } = await netWithSubnet(alice, '10.61.0.0/24');
      await rejects(s.ports.createBulk(alice, [
        { network_id: networkId, name: 'ok', fixed_ips: [{ ip_address: '10.61.0.10' }] },
        { network_id: networkId, name: 'bad', fixed_ips: [{ ip_address: '10.99.0.1' }] },
      ]), 400, 'InvalidIpForNetwork');
      assert.equal(await countRows('ports', networkId), 0);
      assert.equal(await countRows('ip_allocations', networkId), 0);
      const both = await s.ports.createBulk(alice, [{ network_id: networkId, fixed_ips: [{ ip_address: '10.61.0.10' }] }, { network_id: networkId }]);
      assert.equal(both.length, 2);
      assert.notEqual(ipsOf(both[1])[0], '10.61.0.10');
    });

    it('filters by fixed_ips (ip_address, subnet_id, ip_address_substr) and stored attributes', async () => {
      const network = await s.networks.create(carol, {});
      const networkId = network.id as string;
      const a = await s.subnets.create(carol, { network_id: networkId, ip_version: 4, cidr: '10.62.0.0/24' });
      const b = await s.subnets.create(carol, { network_id: networkId, ip_version: 4, cidr: '10.63.0.0/24' });
      const p1 = await s.ports.create(carol, { network_id: networkId, name: 'p1', device_owner: 'compute:nova', fixed_ips: [{ ip_address: '10.62.0.5' }] });
      const p2 = await s.ports.create(carol, { network_id: networkId, name: 'p2', fixed_ips: [{ ip_address: '10.63.0.5' }, { ip_address: '10.62.0.77' }] });
      await s.ports.create(carol, { network_id: networkId, name: 'p3', admin_state_up: false, fixed_ips: [{ ip_address: '10.63.0.9' }] });
      const names = async (f: Record<string, string[]>) =>
        (await s.ports.list(carol, query({ network_id: [networkId], ...f }))).items.map((i) => i.name).sort();
      assert.deepEqual(await names({ fixed_ips: ['ip_address=10.62.0.5'] }), ['p1']);
      assert.deepEqual(await names({ fixed_ips: ['ip_address=10.62.0.5', 'ip_address=10.63.0.9'] }), ['p1', 'p3']);
      assert.deepEqual(await names({ fixed_ips: [`subnet_id=${a.id}`] }), ['p1', 'p2']);
      assert.deepEqual(await names({ fixed_ips: [`subnet_id=${b.id}`, 'ip_address=10.62.0.77'] }), ['p2']);
      assert.deepEqual(await names({ fixed_ips: [`subnet_id=${b.id}`, 'ip_address=10.62.0.5'] }), []);
      assert.deepEqual(await names({ fixed_ips: ['ip_address_substr=.0.9'] }), ['p3']);
      assert.deepEqual(await names({ device_owner: ['compute:nova'] }), ['p1']);
      assert.deepEqual(await names({ admin_state_up: ['False'] }), ['p3']);
      assert.deepEqual(await names({ mac_address: [p2.mac_address as string] }), ['p2']);
      assert.deepEqual(await names({ status: ['DOWN'] }), ['p1', 'p2', 'p3']);
      await rejects(s.ports.list(carol, query({ fixed_ips: ['10.62.0.5'] })), 400, 'InvalidInput', /is not of the form <key>=\[value\]/);
      const page = await s.ports.list(carol, { ...query({ network_id: [networkId] }), sort: [{ key: 'name', dir: 'asc' }], limit: 2 });
      assert.deepEqual(page.items.map((i) => i.name), ['p1', 'p2']);
      assert.deepEqual(ipsOf(page.items[1]).sort(), ['10.62.0.77', '10.63.0.5']);
      void p1;
    });

    it('allowed address pairs need port security; duplicates and missing addresses are refused', async () => {
      const { networkId } = await netWithSubnet(alice, '10.64.0.0/24');
      const p = await s.ports.create(alice, {
        network_id: networkId,
        allowed_address_pairs: [{ ip_address: '10.64.0.200' }, { ip_address: '192.168.0.0/24', mac_address: 'FA:16:3E:00:00:01' }],
      });
      assert.deepEqual(p.allowed_address_pairs, [
        { ip_address: '10.64.0.200', mac_address: p.mac_address },
        { ip_address: '192.168.0.0/24', mac_address: 'fa:16:3e:00:00:01' },
      ]);
      await rejects(s.ports.create(alice, { network_id: networkId, port_security_enabled: false, allowed_address_pairs: [{ ip_address: '10.64.0.9' }] }),
        409, 'AddressPairAndPortSecurityRequired', /^Port Security must be enabled in order to have allowed address pairs on a port.$/);
      await rejects(s.ports.create(alice, { network_id: networkId, allowed_address_pairs: [{ ip_address: '10.64.0.9' }, { ip_address: '10.64.0.9' }] }),
        400, 'DuplicateAddressPairInRequest', /^Request contains duplicate address pair: mac_address None ip_address 10.64.0.9.$/);
      await rejects(s.ports.create(alice, { network_id: networkId, allowed_address_pairs: [{ mac_address: 'fa:16:3e:00:00:01' }] }),
        400, 'AllowedAddressPairsMissingIP', /^AllowedAddressPair must contain ip_address$/);
      await rejects(s.ports.create(alice, { network_id: networkId, allowed_address_pairs: [{ ip_address: 'nope' }] }), 400, 'HTTPBadRequest', /'nope' is not a valid IP address/);
      await rejects(s.ports.create(alice, { network_id: networkId, allowed_address_pairs: Array.from({ length: 11 }, (_, i) => ({ ip_address: `10.1.0.${i}` })) }),
        400, 'AllowedAddressPairExhausted', /exceeds the maximum 10/);
      await rejects(s.ports.update(alice, p.id as string, { port_security_enabled: false, security_groups: [] }), 409, 'AddressPairAndPortSecurityRequired');
      const off = await s.ports.update(alice, p.id as string, { port_security_enabled: false, security_groups: [], allowed_address_pairs: [] });
      assert.equal(off.port_security_enabled, false);
      assert.deepEqual([off.allowed_address_pairs, off.security_groups], [[], []]);
      await rejects(s.ports.update(alice, p.id as string, { allowed_address_pairs: [{ ip_address: '10.64.0.9' }] }), 409, 'AddressPairAndPortSecurityRequired');
    });

    it('port security follows the network; security groups need it and must exist', async () => {
      const { networkId } = await netWithSubnet(alice, '10.65.0.0/24', { port_security_enabled: false });
      const p = await s.ports.create(alice, { network_id: networkId });
      assert.equal(p.port_security_enabled, false);
      assert.deepEqual(p.security_groups, []);
      const withSg = await s.securityGroups.create(alice, { name: 'web' });
      await rejects(s.ports.create(alice, { network_id: networkId, security_groups: [withSg.id] }), 400, 'PortSecurityAndIPRequiredForSecurityGroups');
      const secured = await s.ports.create(alice, { network_id: networkId, port_security_enabled: true, security_groups: [withSg.id] });
      assert.deepEqual(secured.security_groups, [withSg.id]);
      await rejects(s.ports.update(alice, secured.id as string, { port_security_enabled: false }), 409, 'PortSecurityPortHasSecurityGroup');
      await rejects(s.ports.create(alice, { network_id: networkId, port_security_enabled: true, security_groups: ['11111111-2222-3333-4444-555555555555'] }),
        404, 'SecurityGroupNotFound', /^Security group 11111111-2222-3333-4444-555555555555 does not exist$/);
      const bobs = await s.securityGroups.create(bob, { name: 'bobs' });
      await rejects(s.ports.create(alice, { network_id: networkId, port_security_enabled: true, security_groups: [bobs.id] }), 404, 'SecurityGroupNotFound');
      await rejects(s.securityGroups.delete(alice, withSg.id as string), 409, 'SecurityGroupInUse');
      const cleared = await s.ports.update(alice, secured.id as string, { security_groups: [] });
      assert.deepEqual(cleared.security_groups, []);
      const dhcp = await s.ports.create(alice, { network_id: networkId, device_owner: 'network:dhcp', port_security_enabled: true });
      assert.deepEqual(dhcp.security_groups, [], 'network devices are trusted');
    });

    it('MAC addresses: unique per network, chosen by the network owner, changed by admins while unbound', async () => {
      const { networkId } = await netWithSubnet(alice, '10.66.0.0/24');
      await s.subnets.create(alice, { network_id: networkId, ip_version: 6, cidr: 'fd00:66::/64', ipv6_address_mode: 'slaac' });
      const p = await s.ports.create(alice, { network_id: networkId, mac_address: 'FA:16:3E:5D:C8:FF' });
      assert.equal(p.mac_address, 'fa:16:3e:5d:c8:ff');
      assert.ok(ipsOf(p).includes('fd00:66::f816:3eff:fe5d:c8ff'));
      await rejects(s.ports.create(alice, { network_id: networkId, mac_address: 'fa:16:3e:5d:c8:ff' }), 409, 'MacAddressInUse',
        new RegExp(`^Unable to complete operation for network ${networkId}. The mac address fa:16:3e:5d:c8:ff is in use.$`));
      await s.ports.create(alice, { network_id: (await netWithSubnet(alice, '10.67.0.0/24')).networkId, mac_address: 'fa:16:3e:5d:c8:ff' });
      await rejects(s.ports.create(alice, { network_id: networkId, mac_address: '01:00:00:00:00:01' }), 400, 'HTTPBadRequest', /not a valid MAC address/);
      await rejects(s.ports.update(alice, p.id as string, { mac_address: 'fa:16:3e:00:00:02' }), 403, 'PolicyNotAuthorized',
        /^\(rule:update_port and rule:update_port:mac_address\) is disallowed by policy$/);
      const changed = await s.ports.update(admin, p.id as string, { mac_address: 'fa:16:3e:00:00:02' });
      assert.equal(changed.mac_address, 'fa:16:3e:00:00:02');
      assert.ok(ipsOf(changed).includes('fd00:66::f816:3eff:fe00:2'), `the EUI-64 address follows the MAC: ${ipsOf(changed)}`);
      assert.equal(ipsOf(changed).length, 2);
      await s.ports.store.db.updateTable('ports').set({ binding_vif_type: 'ovs' }).where('id', '=', p.id as string).execute();
      await rejects(s.ports.update(admin, p.id as string, { mac_address: 'fa:16:3e:00:00:03' }), 409, 'PortBound',
        /port is already bound, port type: ovs, old_mac fa:16:3e:00:00:02, new_mac fa:16:3e:00:00:03./);
    });

    it('on a shared network members create plain ports; the owner sees them', async () => {
      const { networkId, subnetId } = await netWithSubnet(admin, '10.68.0.0/24', { shared: true, tenant_id: alice.projectId });
      const bobs = await s.ports.create(bob, { network_id: networkId, fixed_ips: [{ subnet_id: subnetId }] });
      assert.equal(bobs.project_id, bob.projectId);
      assert.equal((await s.ports.get(alice, bobs.id as string)).id, bobs.id, 'the network owner sees ports on its network');
      await rejects(s.ports.get(carol, bobs.id as string), 404, 'PortNotFound', /^Port .* could not be found.$/);
      const listed = await s.ports.list(alice, query({ network_id: [networkId] }));
      assert.deepEqual(listed.items.map((i) => i.id), [bobs.id]);
      assert.deepEqual((await s.ports.list(carol, query({ network_id: [networkId] }))).items, []);
      for (const [body, attr] of [
        [{ mac_address: 'fa:16:3e:01:02:03' }, 'mac_address'],
        [{ fixed_ips: [{ ip_address: '10.68.0.50' }] }, 'fixed_ips'],
        [{ port_security_enabled: false }, 'port_security_enabled'],
        [{ device_owner: 'network:dhcp' }, 'device_owner'],
        [{ allowed_address_pairs: [{ ip_address: '10.0.0.1' }] }, 'allowed_address_pairs'],
        [{ 'binding:host_id': 'compute-1' }, 'binding:host_id'],
      ] as const) {
        await rejects(s.ports.create(bob, { network_id: networkId, ...body }), 403, 'PolicyNotAuthorized', new RegExp(`rule:create_port:${attr}`));
      }
      await rejects(s.ports.update(alice, bobs.id as string, { name: 'x' }), 403, 'PolicyNotAuthorized', /^rule:update_port is disallowed by policy$/);
      await rejects(s.ports.update(carol, bobs.id as string, { name: 'x' }), 404, 'PortNotFound');
      await rejects(s.networks.update(admin, networkId, { shared: false }), 409, 'InvalidSharedSetting');
      await s.ports.delete(alice, bobs.id as string);
      await rejects(s.ports.get(bob, bobs.id as string), 404, 'PortNotFound');
    });

    it('updates fixed_ips in one transaction: kept, added, released', async () => {
      const { networkId, subnetId } = await netWithSubnet(alice, '10.69.0.0/24');
      const p = await s.ports.create(alice, { network_id: networkId, fixed_ips: [{ ip_address: '10.69.0.10' }, { ip_address: '10.69.0.11' }] });
      const id = p.id as string;
      const u = await s.ports.update(alice, id, { fixed_ips: [{ ip_address: '10.69.0.11' }, { subnet_id: subnetId, ip_address: '10.69.0.12' }] });
      assert.deepEqual(ipsOf(u), ['10.69.0.11', '10.69.0.12']);
      assert.equal(u.revision_number, 2);
      const reused = await s.ports.create(alice, { network_id: networkId, fixed_ips: [{ ip_address: '10.69.0.10' }] });
      assert.deepEqual(ipsOf(reused), ['10.69.0.10'], 'the released address is free');
      const keep = await s.ports.update(alice, id, { fixed_ips: [{ subnet_id: subnetId }] });
      assert.equal(ipsOf(keep).length, 1);
      assert.ok(['10.69.0.11', '10.69.0.12'].includes(ipsOf(keep)[0]), 'a bare subnet_id keeps an address the port has');
      await rejects(s.ports.update(alice, id, { fixed_ips: [{ ip_address: '10.69.0.10' }] }), 409, 'IpAddressAlreadyAllocated');
      assert.deepEqual(ipsOf(await s.ports.get(alice, id)), ipsOf(keep), 'a failed update changes nothing');
      const cleared = await s.ports.update(alice, id, { fixed_ips: [] });
      assert.deepEqual(cleared.fixed_ips, []);
    });

    it('updates other attributes, with If-Match', async () => {
      const { networkId } = await netWithSubnet(alice, '10.70.0.0/24');
      const p = await s.ports.create(alice, {
        network_id: networkId, name: 'wire-port',
        extra_dhcp_opts: [{ opt_name: 'tftp-server', opt_value: '10.0.0.9' }, { opt_name: 'bootfile-name', opt_value: 'pxe.0', ip_version: 4 }],
      });
      const id = p.id as string;
      assert.deepEqual(p.extra_dhcp_opts, [
        { opt_name: 'tftp-server', opt_value: '10.0.0.9', ip_version: 4 },
        { opt_name: 'bootfile-name', opt_value: 'pxe.0', ip_version: 4 },
      ]);
      const u = await s.ports.update(alice, id, {
        name: 'wire-port-renamed', admin_state_up: false, device_id: 'vm-1', device_owner: 'compute:nova', 'binding:vnic_type': 'direct',
        extra_dhcp_opts: [{ opt_name: 'tftp-server', opt_value: null }, { opt_name: 'bootfile-name', opt_value: 'pxe.1' }, { opt_name: 'mtu', opt_value: '1400', ip_version: 6 }],
      }, 'revision_number=1');
      assert.equal(u.revision_number, 2);
      assert.deepEqual([u.name, u.admin_state_up, u.device_id, u.device_owner, u['binding:vnic_type']],
        ['wire-port-renamed', false, 'vm-1', 'compute:nova', 'direct']);
      assert.deepEqual(u.extra_dhcp_opts, [
        { opt_name: 'bootfile-name', opt_value: 'pxe.1', ip_version: 4 },
        { opt_name: 'mtu', opt_value: '1400', ip_version: 6 },
      ]);
      await rejects(s.ports.update(alice, id, { name: 'x' }, 'revision_number=1'), 412, 'RevisionNumberConstraintFailed',
        /^Constrained to 1, but current revision is 2$/);
      await rejects(s.ports.update(alice, id, { status: 'ACTIVE' }), 400, 'HTTPBadRequest', /read-only attribute status/);
      await rejects(s.ports.update(alice, id, { network_id: networkId }), 400, 'HTTPBadRequest', /read-only attribute network_id/);
      await rejects(s.ports.update(alice, id, { 'binding:vnic_type': 'fancy' }), 400, 'HTTPBadRequest', /binding:vnic_type/);
      await rejects(s.ports.update(alice, id, { 'binding:host_id': 'compute-1' }), 403, 'PolicyNotAuthorized', /rule:update_port:binding:host_id/);
      const bound = await s.ports.update(admin, id, { 'binding:host_id': 'compute-1', 'binding:profile': { pci_slot: '0000:00:1f.0' } });
      assert.equal(bound['binding:host_id'], 'compute-1');
      assert.deepEqual(bound['binding:profile'], { pci_slot: '0000:00:1f.0' });
      assert.equal(bound.status, 'DOWN', 'only an agent binding makes it ACTIVE');
      assert.ok(!('binding:host_id' in (await s.ports.get(alice, id))), 'binding details are for admins');
    });

    it('enforces the port quota', async () => {
      const q = caller('eeee5555eeee5555eeee5555eeee5555');
      await s.ports.store.db.insertInto('quotas').values({ project_id: q.projectId, resource: 'port', hard_limit: 2 }).execute();
      const { networkId } = await netWithSubnet(q, '10.71.0.0/24');
      await s.ports.createBulk(q, [{ network_id: networkId }, { network_id: networkId }]);
      await rejects(s.ports.create(q, { network_id: networkId }), 409, 'OverQuota', /^Quota exceeded for resources: \['port'\].$/);
    });

    it('a network with ports is in use (NetworkInUse names them); DHCP and distributed ports go with it', async () => {
      const { networkId } = await netWithSubnet(alice, '10.72.0.0/24');
      const p = await s.ports.create(alice, { network_id: networkId });
      await s.ports.create(alice, { network_id: networkId, device_owner: 'network:dhcp' });
      await s.ports.create(alice, { network_id: networkId, device_owner: 'network:distributed' });
      await rejects(s.networks.delete(alice, networkId), 409, 'NetworkInUse',
        new RegExp(`^Unable to complete operation on network ${networkId}. There are one or more ports still in use on the network, id for these ports is: ${p.id}.$`));
      await s.ports.delete(alice, p.id as string);
      await s.networks.delete(alice, networkId);
      assert.equal(await countRows('ports', networkId), 0);
      assert.equal(await countRows('ip_allocations', networkId), 0);
    });

    it('allocating on a /16 with 2,000 ports reads a handful of rows, not every allocation', async () => {
      const q = caller('ffff6666ffff6666ffff6666ffff6666');
      await s.ports.store.db.insertInto('quotas').values({ project_id: q.projectId, resource: 'port', hard_limit: -1 }).execute();
      const { networkId, subnetId } = await netWithSubnet(q, '172.16.0.0/16');
      const t0 = performance.now();
      for (let i = 0; i < 2000; i += 100) {
        await s.ports.createBulk(q, Array.from({ length: 100 }, (_, j) => ({ network_id: networkId, name: `p${i + j}` })));
      }
      const createMs = performance.now() - t0;
      let rowsRead = 0;
      const counting = s.ports.store.db.withPlugin({
        transformQuery: (a) => a.node,
        transformResult: async (a) => { rowsRead += a.result.rows.length; return a.result; },
      });
      const subnet = subnetInfo(await s.ports.store.db.selectFrom('subnets').selectAll().where('id', '=', subnetId).executeTakeFirstOrThrow());
      for (let i = 0; i < 100; i++) assert.notEqual(await pickFreeAddress(counting as never, subnet), null);
      assert.ok(rowsRead < 100, `${rowsRead} rows read for 100 picks`);
      await s.ports.list(q, query({ network_id: [networkId] })); // warm
      const t1 = performance.now();
      const all = await s.ports.list(q, query({ network_id: [networkId] }));
      const listMs = performance.now() - t1;
      assert.equal(all.items.length, 2000);
      assert.equal(new Set(all.items.flatMap(ipsOf)).size, 2000);
      console.log(`  ${backend.name}: 2,000 ports created in ${createMs.toFixed(0)} ms; listed in ${listMs.toFixed(0)} ms`);
      if (backend.name === 'sqlite') assert.ok(listMs < 200, `listing took ${listMs} ms`);
    });
  });
});
