import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { NeutronError } from '../src/errors.ts';
import { forEachBackend } from './support/backends.ts';
import { rejectsNeutron as rejects } from './support/assertions.ts';
import { caller } from './support/callers.ts';
import { createServices, type Services } from '../src/services/index.ts';
import { emptyQuery } from '../src/services/resource-store.ts';

const alice = caller('aaaa1111aaaa1111aaaa1111aaaa1111');
const bob = caller('bbbb2222bbbb2222bbbb2222bbbb2222');
const admin = caller('adad0000adad0000adad0000adad0000', 'admin');
const aliceReader = caller(alice.projectId, 'reader');


const query = (filters: Record<string, string[]>) => ({ ...emptyQuery(), filters });

forEachBackend((backend) => {
  describe(`subnets on ${backend.name}`, () => {
    let s: Services;
    before(async () => { s = createServices(await backend.openStore()); });
    const net = async (who = alice, body: Record<string, unknown> = {}) => (await s.networks.create(who, { name: 'n', ...body })).id as string;

    it('creates with the attributes, order and defaults of a real Neutron', async () => {
      const networkId = await net();
      const before = await s.networks.get(alice, networkId);
      const sn = await s.subnets.create(alice, { name: 'wire-subnet', network_id: networkId, ip_version: 4, cidr: '10.50.0.0/24' });
      assert.deepEqual(Object.keys(sn), [
        'id', 'name', 'tenant_id', 'network_id', 'ip_version', 'subnetpool_id', 'enable_dhcp', 'ipv6_ra_mode',
        'ipv6_address_mode', 'gateway_ip', 'cidr', 'allocation_pools', 'host_routes', 'dns_nameservers', 'description',
        'service_types', 'tags', 'created_at', 'updated_at', 'revision_number', 'project_id',
      ]);
      const { id, created_at, updated_at, ...rest } = sn;
      assert.match(id as string, /^[0-9a-f-]{36}$/);
      assert.match(created_at as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assert.equal(updated_at, created_at);
      assert.deepEqual(rest, {
        name: 'wire-subnet', tenant_id: alice.projectId, network_id: networkId, ip_version: 4, subnetpool_id: null,
        enable_dhcp: true, ipv6_ra_mode: null, ipv6_address_mode: null, gateway_ip: '10.50.0.1', cidr: '10.50.0.0/24',
        allocation_pools: [{ start: '10.50.0.2', end: '10.50.0.254' }], host_routes: [], dns_nameservers: [],
        description: '', service_types: [], tags: [], revision_number: 0, project_id: alice.projectId,
      });
      const after = await s.networks.get(alice, networkId);
      assert.deepEqual(after.subnets, [id]);
      assert.equal(after.revision_number, (before.revision_number as number) + 1, 'a new subnet bumps the network');
    });

    it('normalizes CIDRs and addresses; refuses what netaddr cannot read', async () => {
      const networkId = await net();
      const sn = await s.subnets.create(alice, { network_id: networkId, ip_version: 4, cidr: '10.60.0.77/24' });
      assert.equal(sn.cidr, '10.60.0.0/24', 'host bits are cleared, as Neutron does');
      const v6 = await s.subnets.create(alice, {
        network_id: networkId, ip_version: 6, cidr: '2001:DB8:0:0::/64', gateway_ip: '2001:DB8::1', dns_nameservers: ['2001:4860:0:0::8888'],
      });
      assert.equal(v6.cidr, '2001:db8::/64');
      assert.equal(v6.gateway_ip, '2001:db8::1');
      assert.deepEqual(v6.dns_nameservers, ['2001:4860::8888']);
      assert.deepEqual(v6.allocation_pools, [{ start: '2001:db8::2', end: '2001:db8::ffff:ffff:ffff:ffff' }]);
      await rejects(s.subnets.create(alice, { network_id: networkId, ip_version: 4, cidr: '10.50.1.0/33' }), 400, 'InvalidInput',
        /^Invalid input for operation: 10.50.1.0\/33 is not in a CIDR format.$/);
      await rejects(s.subnets.create(alice, { network_id: networkId, ip_version: 6, cidr: '10.70.0.0/24' }), 400, 'InvalidInput',
        /^Invalid input for operation: cidr '10.70.0.0\/24' does not match the ip_version '6'.$/);
      await rejects(s.subnets.create(alice, { network_id: networkId, ip_version: 5, cidr: '10.70.0.0/24' }), 400, 'HTTPBadRequest',
        /^Invalid input for ip_version. Reason: 5 is not in \[4, 6\].$/);
      await rejects(s.subnets.create(alice, { network_id: networkId, ip_version: 'x', cidr: '10.70.0.0/24' }), 400, 'InvalidInput', /'x' is not an integer/);
      await rejects(s.subnets.create(alice, { network_id: networkId, cidr: '10.70.0.0/24' }), 400, 'HTTPBadRequest',
        /^Failed to parse request. Required attribute 'ip_version' not specified$/);
      await rejects(s.subnets.create(alice, { network_id: networkId, ip_version: 4 }), 400, 'BadRequest',
        /^Bad subnets request: A cidr must be specified in the absence of a subnet pool.$/);
      await rejects(s.subnets.create(alice, { network_id: networkId, ip_version: 4, cidr: '10.70.0.0/24', subnetpool_id: '11111111-2222-3333-4444-555555555555' }),
        404, 'SubnetPoolNotFound', /^Subnet pool 11111111-2222-3333-4444-555555555555 could not be found.$/);
      await rejects(s.subnets.create(alice, { network_id: networkId, ip_version: 4, cidr: '10.70.0.0/24', gateway_ip: '10.70.0.300' }), 400, 'HTTPBadRequest',
        /^Invalid input for gateway_ip. Reason: '10.70.0.300' is not a valid IP address.$/);
    });

    it('refuses overlapping CIDRs within a network only', async () => {
      const networkId = await net();
      await s.subnets.create(alice, { network_id: networkId, ip_version: 4, cidr: '10.50.0.0/24' });
      await rejects(s.subnets.create(alice, { network_id: networkId, ip_version: 4, cidr: '10.50.0.128/25' }), 400, 'InvalidInput',
        new RegExp(`^Invalid input for operation: Requested subnet with cidr: 10.50.0.128/25 for network: ${networkId} overlaps with another subnet.$`));
      await rejects(s.subnets.create(alice, { network_id: networkId, ip_version: 4, cidr: '10.0.0.0/8' }), 400, 'InvalidInput', /overlaps/);
      await s.subnets.create(alice, { network_id: await net(), ip_version: 4, cidr: '10.50.0.0/24' });
      await s.subnets.create(bob, { network_id: await net(bob), ip_version: 4, cidr: '10.50.0.0/24' });
    });

    it('overlap is checked under concurrency too', async () => {
      const networkId = await net();
      const results = await Promise.allSettled(Array.from({ length: 6 }, () =>
        s.subnets.create(alice, { network_id: networkId, ip_version: 4, cidr: '10.99.0.0/24' })));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as NeutronError).type, 'InvalidInput');
    });

    it('gateways: none, explicit, outside the cidr; never the network or broadcast address', async () => {
      const networkId = await net();
      const none = await s.subnets.create(alice, { network_id: networkId, ip_version: 4, cidr: '10.1.0.0/24', gateway_ip: null });
      assert.equal(none.gateway_ip, null);
      assert.deepEqual(none.allocation_pools, [{ start: '10.1.0.1', end: '10.1.0.254' }]);
      const last = await s.subnets.create(alice, { network_id: networkId, ip_version: 4, cidr: '10.2.0.0/24', gateway_ip: '10.2.0.254' });
      assert.deepEqual(last.allocation_pools, [{ start: '10.2.0.1', end: '10.2.0.253' }]);
      const onLink = await s.subnets.create(alice, { network_id: networkId, ip_version: 4, cidr: '10.3.0.0/24', gateway_ip: '192.0.2.1' });
      assert.equal(onLink.gateway_ip, '192.0.2.1', 'Neutron accepts an on-link gateway outside the cidr');
      await rejects(s.subnets.create(alice, { network_id: networkId, ip_version: 4, cidr: '10.4.0.0/24', gateway_ip: '10.4.0.255' }), 400, 'InvalidInput',
        /^Invalid input for operation: Gateway is not valid on subnet.$/);
      await rejects(s.subnets.create(alice, { network_id: networkId, ip_version: 4, cidr: '10.4.0.0/24', gateway_ip: '10.4.0.0' }), 400, 'InvalidInput');
    });

    it('validates allocation pools', async () => {
      const networkId = await net();
      const sn = await s.subnets.create(alice, {
        network_id: networkId, ip_version: 4, cidr: '10.5.0.0/24',
        allocation_pools: [{ start: '10.5.0.100', end: '10.5.0.199' }, { start: '10.5.0.10', end: '10.5.0.19' }],
      });
      assert.deepEqual(sn.allocation_pools, [{ start: '10.5.0.100', end: '10.5.0.199' }, { start: '10.5.0.10', end: '10.5.0.19' }]);
      const base = { network_id: networkId, ip_version: 4, cidr: '10.6.0.0/24' };
      await rejects(s.subnets.create(alice, { ...base, allocation_pools: [{ start: '10.6.0.1', end: '10.6.0.50' }] }), 409,
        'GatewayConflictWithAllocationPools', /^Gateway ip 10.6.0.1 conflicts with allocation pool 10.6.0.1-10.6.0.50.$/);
      await rejects(s.subnets.create(alice, { ...base, allocation_pools: [{ start: '10.6.0.2', end: '10.6.1.5' }] }), 400, 'OutOfBoundsAllocationPool');
      await rejects(s.subnets.create(alice, { ...base, allocation_pools: [{ start: '10.6.0.20', end: '10.6.0.10' }] }), 400, 'InvalidAllocationPool');
      await rejects(s.subnets.create(alice, { ...base, allocation_pools: [{ start: '10.6.0.2', end: '10.6.0.20' }, { start: '10.6.0.20', end: '10.6.0.30' }] }),
        409, 'OverlappingAllocationPools');
      await rejects(s.subnets.create(alice, { ...base, allocation_pools: [{ start: '10.6.0.2' }] }), 400, 'HTTPBadRequest', /Validation of dictionary's keys failed/);
      await rejects(s.subnets.create(alice, { ...base, allocation_pools: [{ start: '10.6.0.2', end: 'x' }] }), 400, 'HTTPBadRequest',
        /^Invalid input for allocation_pools. Reason: 'x' is not a valid IP address.$/);
    });

    it('validates DNS servers and host routes', async () => {
      const networkId = await net();
      const base = { network_id: networkId, ip_version: 4, cidr: '10.7.0.0/24' };
      const sn = await s.subnets.create(alice, { ...base, dns_nameservers: ['8.8.8.8', '1.1.1.1'], host_routes: [{ destination: '192.168.0.0/16', nexthop: '10.7.0.254' }] });
      assert.deepEqual(sn.dns_nameservers, ['8.8.8.8', '1.1.1.1'], 'order kept');
      assert.deepEqual(sn.host_routes, [{ destination: '192.168.0.0/16', nexthop: '10.7.0.254' }]);
      await rejects(s.subnets.create(alice, { ...base, cidr: '10.8.0.0/24', dns_nameservers: ['8.8.8.8', '8.8.8.8'] }), 400, 'HTTPBadRequest',
        /^Invalid input for dns_nameservers. Reason: Duplicate nameserver '8.8.8.8'.$/);
      await rejects(s.subnets.create(alice, { ...base, cidr: '10.8.0.0/24', dns_nameservers: ['8.8.8'] }), 400, 'HTTPBadRequest',
        /'8.8.8' is not a valid nameserver/);
      await rejects(s.subnets.create(alice, { ...base, cidr: '10.8.0.0/24', dns_nameservers: ['1.0.0.1', '1.0.0.2', '1.0.0.3', '1.0.0.4', '1.0.0.5', '1.0.0.6'] }),
        400, 'DNSNameServersExhausted', /^Unable to complete operation for new subnet. The number of DNS nameservers exceeds the limit 5.$/);
      await rejects(s.subnets.create(alice, { ...base, cidr: '10.8.0.0/24', host_routes: [{ destination: '192.168.1.1/16', nexthop: '10.8.0.1' }] }),
        400, 'HTTPBadRequest', /'192.168.1.1\/16' is not a valid CIDR/);
      await rejects(s.subnets.create(alice, { ...base, cidr: '10.8.0.0/24', host_routes: [{ destination: '2001:db8::/64', nexthop: '10.8.0.1' }] }),
        400, 'InvalidInput', /destination '2001:db8::\/64' does not match the ip_version '4'/);
    });

    it('IPv6 address modes and DHCP prefix limits', async () => {
      const networkId = await net();
      const slaac = await s.subnets.create(alice, { network_id: networkId, ip_version: 6, cidr: 'fd00:1::/64', ipv6_ra_mode: 'slaac', ipv6_address_mode: 'slaac' });
      assert.equal(slaac.gateway_ip, 'fd00:1::1', 'network address + 1, as Neutron answers');
      assert.deepEqual(slaac.allocation_pools, [{ start: 'fd00:1::2', end: 'fd00:1::ffff:ffff:ffff:ffff' }]);
      const base = { network_id: networkId, ip_version: 6 };
      await rejects(s.subnets.create(alice, { ...base, cidr: 'fd00:2::/64', ipv6_ra_mode: 'slaac', ipv6_address_mode: 'dhcpv6-stateful' }), 400, 'InvalidInput',
        /If both attributes are set, they must be the same value/);
      await rejects(s.subnets.create(alice, { ...base, cidr: 'fd00:2::/64', ipv6_address_mode: 'bogus' }), 400, 'HTTPBadRequest',
        /^Invalid input for ipv6_address_mode. Reason: 'bogus' is not in/);
      await rejects(s.subnets.create(alice, { network_id: networkId, ip_version: 4, cidr: '10.9.0.0/24', ipv6_ra_mode: 'slaac' }), 400, 'InvalidInput',
        /ipv6_ra_mode is not valid when ip_version is 4/);
      await rejects(s.subnets.create(alice, { ...base, cidr: 'fd00:3::/80', ipv6_address_mode: 'slaac' }), 400, 'InvalidInput', /requires the prefix to be \/64/);
      await rejects(s.subnets.create(alice, { network_id: networkId, ip_version: 4, cidr: '10.9.0.9/32' }), 400, 'InvalidInput',
        /prefix length that is incompatible with DHCP service enabled/);
      const host = await s.subnets.create(alice, { network_id: networkId, ip_version: 4, cidr: '10.9.0.9/32', enable_dhcp: false, gateway_ip: null });
      assert.deepEqual(host.allocation_pools, [{ start: '10.9.0.9', end: '10.9.0.9' }]);
    });

    it('needs a visible network the caller owns (Neutron create_subnet)', async () => {
      await rejects(s.subnets.create(alice, { network_id: '0b6b5d1c-9e5f-4f4e-9a4a-000000000000', ip_version: 4, cidr: '10.0.0.0/24' }), 404,
        'NetworkNotFound', /^Network 0b6b5d1c-9e5f-4f4e-9a4a-000000000000 could not be found.$/);
      const bobs = await net(bob);
      await rejects(s.subnets.create(alice, { network_id: bobs, ip_version: 4, cidr: '10.0.0.0/24' }), 404, 'NetworkNotFound');
      const shared = await net(admin, { shared: true });
      await rejects(s.subnets.create(alice, { network_id: shared, ip_version: 4, cidr: '10.0.0.0/24' }), 403, 'PolicyNotAuthorized',
        /^rule:create_subnet is disallowed by policy$/);
      const external = await net(admin, { 'router:external': true });
      await rejects(s.subnets.create(alice, { network_id: external, ip_version: 4, cidr: '10.0.0.0/24' }), 403, 'HTTPForbidden',
        new RegExp(`^Tenant ${alice.projectId} not allowed to create subnet on this network$`));
      await rejects(s.subnets.create(aliceReader, { network_id: await net(), ip_version: 4, cidr: '10.0.0.0/24' }), 403, 'PolicyNotAuthorized');
      await rejects(s.subnets.create(alice, { network_id: await net(), ip_version: 4, cidr: '10.0.0.0/24', service_types: ['network:dhcp'] }), 403,
        'PolicyNotAuthorized', /rule:create_subnet:service_types/);
      const mine = await s.subnets.create(admin, { network_id: shared, ip_version: 4, cidr: '10.0.0.0/24', tenant_id: alice.projectId });
      assert.equal(mine.project_id, alice.projectId);
    });

    it('is visible to its owner, the network owner, and on shared or external networks', async () => {
      const priv = await s.subnets.create(alice, { network_id: await net(), ip_version: 4, cidr: '10.11.0.0/24' });
      await rejects(s.subnets.get(bob, priv.id as string), 404, 'SubnetNotFound', /^Subnet .* could not be found.$/);
      await rejects(s.subnets.update(bob, priv.id as string, { name: 'x' }), 404, 'SubnetNotFound');
      const shared = await net(admin, { shared: true, tenant_id: alice.projectId });
      const onShared = await s.subnets.create(alice, { network_id: shared, ip_version: 4, cidr: '10.12.0.0/24' });
      assert.equal((await s.subnets.get(bob, onShared.id as string)).cidr, '10.12.0.0/24');
      await rejects(s.subnets.update(bob, onShared.id as string, { name: 'x' }), 403, 'PolicyNotAuthorized', /^rule:update_subnet is disallowed by policy$/);
      await rejects(s.subnets.delete(bob, onShared.id as string), 403, 'PolicyNotAuthorized');
      // An admin's subnet on alice's network: alice, the network owner, sees and manages it.
      const adminsOnAlice = await s.subnets.create(admin, { network_id: await net(), ip_version: 4, cidr: '10.13.0.0/24' });
      assert.equal(adminsOnAlice.project_id, admin.projectId);
      await s.subnets.update(alice, adminsOnAlice.id as string, { name: 'renamed' });
      await s.subnets.delete(alice, adminsOnAlice.id as string);
    });

    it('updates the mutable attributes, with revisions and If-Match', async () => {
      const sn = await s.subnets.create(alice, { network_id: await net(), ip_version: 4, cidr: '10.14.0.0/24' });
      const id = sn.id as string;
      const u = await s.subnets.update(alice, id, {
        name: 'new', description: 'd', gateway_ip: '10.14.0.254', allocation_pools: [{ start: '10.14.0.10', end: '10.14.0.20' }],
        dns_nameservers: ['9.9.9.9'], host_routes: [{ destination: '0.0.0.0/0', nexthop: '10.14.0.254' }], enable_dhcp: false,
      }, 'revision_number=0');
      assert.equal(u.revision_number, 1);
      assert.equal(u.gateway_ip, '10.14.0.254');
      assert.deepEqual(u.allocation_pools, [{ start: '10.14.0.10', end: '10.14.0.20' }]);
      assert.deepEqual(u.dns_nameservers, ['9.9.9.9']);
      assert.equal(u.enable_dhcp, false);
      await rejects(s.subnets.update(alice, id, { gateway_ip: '10.14.0.15' }), 409, 'GatewayConflictWithAllocationPools');
      await rejects(s.subnets.update(alice, id, { allocation_pools: [{ start: '10.14.0.250', end: '10.14.0.254' }] }), 409, 'GatewayConflictWithAllocationPools');
      await rejects(s.subnets.update(alice, id, { cidr: '10.15.0.0/24' }), 400, 'HTTPBadRequest', /^Cannot update read-only attribute cidr$/);
      await rejects(s.subnets.update(alice, id, { ip_version: 6 }), 400, 'HTTPBadRequest', /read-only attribute ip_version/);
      await rejects(s.subnets.update(alice, id, { network_id: sn.network_id }), 400, 'HTTPBadRequest', /read-only attribute network_id/);
      await rejects(s.subnets.update(alice, id, { name: 'x' }, 'revision_number=0'), 412, 'RevisionNumberConstraintFailed',
        /^Constrained to 0, but current revision is 1$/);
      const off = await s.subnets.update(alice, id, { gateway_ip: null });
      assert.equal(off.gateway_ip, null);
    });

    it('refuses to disable DHCP on IPv6 subnets with address modes', async () => {
      const sn = await s.subnets.create(alice, { network_id: await net(), ip_version: 6, cidr: 'fd00:14::/64', ipv6_address_mode: 'dhcpv6-stateful' });
      await rejects(s.subnets.update(alice, sn.id as string, { enable_dhcp: false }), 400, 'InvalidInput', /Cannot disable enable_dhcp/);
      await rejects(s.subnets.update(alice, sn.id as string, { ipv6_address_mode: 'slaac' }), 400, 'HTTPBadRequest', /read-only/);
    });

    it('deletes unless ports hold addresses; DHCP ports do not count', async () => {
      const networkId = await net();
      const sn = await s.subnets.create(alice, { network_id: networkId, ip_version: 4, cidr: '10.16.0.0/24' });
      const id = sn.id as string;
      const port = await s.ports.create(alice, { network_id: networkId });
      await rejects(s.subnets.delete(alice, id), 409, 'SubnetInUse',
        new RegExp(`^Unable to complete operation on subnet ${id}: One or more ports have an IP allocation from this subnet.$`));
      await s.ports.delete(alice, port.id as string);
      const dhcp = await s.ports.create(alice, { network_id: networkId, device_owner: 'network:dhcp' });
      assert.equal((dhcp.fixed_ips as unknown[]).length, 1);
      const netRev = (await s.networks.get(alice, networkId)).revision_number as number;
      await s.subnets.delete(alice, id);
      await rejects(s.subnets.get(alice, id), 404, 'SubnetNotFound');
      assert.deepEqual((await s.ports.get(alice, dhcp.id as string)).fixed_ips, [], 'the DHCP port lost its address');
      const n = await s.networks.get(alice, networkId);
      assert.deepEqual(n.subnets, []);
      assert.equal(n.revision_number, netRev + 1);
    });

    it('SLAAC subnets address existing ports and release them on delete', async () => {
      const networkId = await net();
      await s.subnets.create(alice, { network_id: networkId, ip_version: 4, cidr: '10.17.0.0/24' });
      const port = await s.ports.create(alice, { network_id: networkId });
      const router = await s.ports.create(alice, { network_id: networkId, device_owner: 'network:router_interface' });
      const slaac = await s.subnets.create(alice, { network_id: networkId, ip_version: 6, cidr: 'fd00:17::/64', ipv6_ra_mode: 'slaac', ipv6_address_mode: 'slaac' });
      const mac = (port.mac_address as string).split(':');
      const eui = `fd00:17::${(parseInt(mac[0], 16) ^ 2).toString(16)}${mac[1]}:${mac[2]}ff:fe${mac[3]}:${mac[4]}${mac[5]}`.replace(/:0+([0-9a-f])/g, ':$1');
      const after = await s.ports.get(alice, port.id as string);
      assert.deepEqual((after.fixed_ips as Array<{ ip_address: string }>).map((f) => f.ip_address).slice(1), [eui]);
      assert.equal(after.revision_number, (port.revision_number as number) + 1);
      assert.equal((await s.ports.get(alice, router.id as string)).revision_number, router.revision_number, 'router interfaces get no SLAAC address');
      await s.ports.delete(alice, router.id as string);
      await s.subnets.delete(alice, slaac.id as string);
      assert.equal(((await s.ports.get(alice, port.id as string)).fixed_ips as unknown[]).length, 1);
    });

    it('lists with filters on stored attributes', async () => {
      const p = caller('cccc3333cccc3333cccc3333cccc3333');
      const networkId = await net(p);
      await s.subnets.create(p, { network_id: networkId, ip_version: 4, cidr: '10.20.0.0/24', name: 'a' });
      await s.subnets.create(p, { network_id: networkId, ip_version: 4, cidr: '10.21.0.0/24', name: 'b', enable_dhcp: false, gateway_ip: '10.21.0.9' });
      await s.subnets.create(p, { network_id: networkId, ip_version: 6, cidr: 'fd00:20::/64', name: 'c' });
      const names = async (f: Record<string, string[]>) => (await s.subnets.list(p, query({ network_id: [networkId], ...f }))).items.map((i) => i.name).sort();
      assert.deepEqual(await names({}), ['a', 'b', 'c']);
      assert.deepEqual(await names({ ip_version: ['4'] }), ['a', 'b']);
      assert.deepEqual(await names({ cidr: ['10.21.0.0/24'] }), ['b']);
      assert.deepEqual(await names({ enable_dhcp: ['false'] }), ['b']);
      assert.deepEqual(await names({ gateway_ip: ['10.21.0.9'] }), ['b']);
      assert.deepEqual(await names({ name: ['a', 'c'] }), ['a', 'c']);
      const sorted = await s.subnets.list(p, { ...query({ network_id: [networkId] }), sort: [{ key: 'cidr', dir: 'desc' }] });
      assert.deepEqual(sorted.items.map((i) => i.name), ['c', 'b', 'a']);
    });

    it('enforces the subnet quota', async () => {
      const q = caller('dddd4444dddd4444dddd4444dddd4444');
      await s.subnets.store.db.insertInto('quotas').values({ project_id: q.projectId, resource: 'subnet', hard_limit: 1 }).execute();
      const networkId = await net(q);
      await s.subnets.create(q, { network_id: networkId, ip_version: 4, cidr: '10.30.0.0/24' });
      await rejects(s.subnets.create(q, { network_id: networkId, ip_version: 4, cidr: '10.31.0.0/24' }), 409, 'OverQuota',
        /^Quota exceeded for resources: \['subnet'\].$/);
    });

    it('goes with its network', async () => {
      const networkId = await net();
      const sn = await s.subnets.create(alice, { network_id: networkId, ip_version: 4, cidr: '10.40.0.0/24' });
      await s.ports.create(alice, { network_id: networkId, device_owner: 'network:dhcp' });
      await s.networks.delete(alice, networkId);
      await rejects(s.subnets.get(admin, sn.id as string), 404, 'SubnetNotFound');
    });
  });
});
