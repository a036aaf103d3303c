// Address math and Neutron's subnet rules, without a database.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { throwsNeutron } from './support/assertions.ts';
import {
  addressAt, canonicalIp, checkSubnetIp, defaultGateway, eui64Address, formatIp, formatNet, formatPools, generatePools,
  ipAddressError, isEui64, netOf, netsOverlap, parseCidr, parseIp, parseNet, planAddressing, planAddressingUpdate,
  randomBelow, rangeSize, validateAllocationPools, validateSubnet, type Net,
} from '../src/services/ipam.ts';

const net = (text: string): Net => parseNet(text)!;
const ip = (text: string) => parseIp(text)!;


describe('address text', () => {
  it('parses strictly and prints canonical text', () => {
    assert.equal(formatIp(4, ip('10.0.0.5').value), '10.0.0.5');
    assert.equal(canonicalIp('2001:DB8:0:0:0:0:0:1'), '2001:db8::1');
    assert.equal(canonicalIp('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1', 'first longest zero run');
    assert.equal(canonicalIp('2001:db8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1', 'a single zero group stays');
    assert.equal(canonicalIp('::'), '::');
    assert.equal(canonicalIp('::1'), '::1');
    assert.equal(canonicalIp('fe80::'), 'fe80::');
    assert.equal(canonicalIp('::ffff:1.2.3.4'), '::ffff:1.2.3.4');
    for (const bad of ['10.0.0', '10.0.0.256', '1.2.3.4.5', '', ' 10.0.0.1', 'fe80::1%eth0', '1::2::3', 'x', '10.0.0.1/24']) {
      assert.equal(parseIp(bad), null, bad);
    }
  });

  it("words errors as Neutron's validate_ip_address", () => {
    assert.equal(ipAddressError('10.0.0.1'), null);
    assert.equal(ipAddressError('10.0.0.300'), "'10.0.0.300' is not a valid IP address");
    assert.equal(ipAddressError('010.0.0.1'), "'010.0.0.1' is not an accepted IP address, '10.0.0.1' is recommended");
    assert.equal(ipAddressError(null), "'None' is not a valid IP address");
  });

  it('reads CIDRs like netaddr: host bits kept, bare address, netmask', () => {
    const c = parseCidr('10.0.0.5/24')!;
    assert.equal(formatIp(4, c.ip.value), '10.0.0.5');
    assert.equal(formatNet(netOf(c.ip, c.prefixlen)), '10.0.0.0/24');
    assert.equal(parseCidr('10.0.0.5')!.prefixlen, 32);
    assert.equal(parseCidr('10.0.0.0/255.255.255.0')!.prefixlen, 24);
    assert.equal(parseCidr('10.0.0.0/255.0.255.0'), null);
    assert.equal(parseCidr('10.0.0.0/33'), null);
    assert.equal(parseCidr('2001:db8::/129'), null);
    assert.equal(formatNet(net('2001:DB8::1/64')), '2001:db8::/64');
  });

  it('overlap, ranges and random picks', () => {
    assert.ok(netsOverlap(net('10.0.0.0/24'), net('10.0.0.128/25')));
    assert.ok(!netsOverlap(net('10.0.0.0/25'), net('10.0.0.128/25')));
    assert.ok(!netsOverlap(net('10.0.0.0/8'), net('::/0')), 'different versions never overlap');
    const pools = [{ first: 10n, last: 12n }, { first: 20n, last: 21n }];
    assert.equal(rangeSize(pools), 5n);
    assert.deepEqual([0n, 2n, 3n, 4n].map((i) => addressAt(pools, i)), [10n, 12n, 20n, 21n]);
    for (let i = 0; i < 200; i++) {
      const r = randomBelow(1n << 64n);
      assert.ok(r >= 0n && r < 1n << 64n);
      assert.ok(randomBelow(3n) < 3n);
    }
  });
});

describe('subnet defaults (Neutron generate_pools)', () => {
  it('IPv4: gateway is the first host; the pool is the rest minus network and broadcast', () => {
    const n = net('10.50.0.0/24');
    assert.equal(formatIp(4, defaultGateway(n)), '10.50.0.1');
    assert.deepEqual(planAddressing(n, undefined, undefined), {
      gateway_ip: '10.50.0.1', allocation_pools: [{ start: '10.50.0.2', end: '10.50.0.254' }],
    });
    assert.deepEqual(planAddressing(n, null, undefined).allocation_pools, [{ start: '10.50.0.1', end: '10.50.0.254' }]);
    assert.deepEqual(planAddressing(n, '10.50.0.100', undefined).allocation_pools,
      [{ start: '10.50.0.1', end: '10.50.0.99' }, { start: '10.50.0.101', end: '10.50.0.254' }]);
    // /31 and /32 have no network or broadcast address.
    assert.deepEqual(formatPools(4, generatePools(net('10.0.0.0/31'), null)), [{ start: '10.0.0.0', end: '10.0.0.1' }]);
    assert.deepEqual(formatPools(4, generatePools(net('10.0.0.7/32'), null)), [{ start: '10.0.0.7', end: '10.0.0.7' }]);
  });

  it('IPv6: gateway defaults to ::1 (what Neutron answers); pools skip the subnet-router anycast address', () => {
    const n = net('2001:db8::/64');
    assert.deepEqual(planAddressing(n, undefined, undefined), {
      gateway_ip: '2001:db8::1', allocation_pools: [{ start: '2001:db8::2', end: '2001:db8::ffff:ffff:ffff:ffff' }],
    });
    assert.deepEqual(planAddressing(n, null, undefined).allocation_pools,
      [{ start: '2001:db8::1', end: '2001:db8::ffff:ffff:ffff:ffff' }]);
    assert.deepEqual(planAddressing(n, '2001:db8::1', undefined).allocation_pools,
      [{ start: '2001:db8::2', end: '2001:db8::ffff:ffff:ffff:ffff' }]);
  });
});

describe('allocation pool validation', () => {
  const n = net('10.0.0.0/24');
  it('accepts pools inside the usable range and keeps the gateway out', () => {
    const p = planAddressing(n, '10.0.0.1', [{ start: '10.0.0.10', end: '10.0.0.20' }, { start: '10.0.0.30', end: '10.0.0.30' }]);
    assert.equal(p.allocation_pools.length, 2);
    throwsNeutron(() => planAddressing(n, '10.0.0.15', [{ start: '10.0.0.10', end: '10.0.0.20' }]), 409,
      'GatewayConflictWithAllocationPools', /^Gateway ip 10.0.0.15 conflicts with allocation pool 10.0.0.10-10.0.0.20.$/);
  });

  it('refuses pools out of bounds, reversed, overlapping or of the other version', () => {
    throwsNeutron(() => planAddressing(n, null, [{ start: '10.0.0.0', end: '10.0.0.5' }]), 400, 'OutOfBoundsAllocationPool',
      /^The allocation pool 10.0.0.0-10.0.0.5 spans beyond the subnet cidr 10.0.0.0\/24.$/);
    throwsNeutron(() => planAddressing(n, null, [{ start: '10.0.0.250', end: '10.0.0.255' }]), 400, 'OutOfBoundsAllocationPool');
    throwsNeutron(() => planAddressing(n, null, [{ start: '10.0.0.9', end: '10.0.0.5' }]), 400, 'InvalidAllocationPool',
      /^The allocation pool \{'start': '10.0.0.9', 'end': '10.0.0.5'\} is not valid.$/);
    throwsNeutron(() => planAddressing(n, null, [{ start: '10.0.0.2', end: '10.0.0.9' }, { start: '10.0.0.9', end: '10.0.0.12' }]),
      409, 'OverlappingAllocationPools', /^Found overlapping allocation pools: 10.0.0.2-10.0.0.9 10.0.0.9-10.0.0.12 for subnet 10.0.0.0\/24.$/);
    throwsNeutron(() => planAddressing(n, null, [{ start: '::2', end: '::5' }]), 400, 'InvalidAllocationPool', /::2-::5/);
    assert.doesNotThrow(() => validateAllocationPools([{ first: 1n, last: 2n }, { first: 3n, last: 4n }], net('0.0.0.0/29')));
  });

  it('on update checks the gateway against the pools that will be', () => {
    const pools = [{ first: ip('10.0.0.2').value, last: ip('10.0.0.254').value }];
    assert.deepEqual(planAddressingUpdate(n, pools, ip('10.0.0.1').value, undefined, undefined), {});
    throwsNeutron(() => planAddressingUpdate(n, pools, ip('10.0.0.1').value, '10.0.0.50', undefined), 409, 'GatewayConflictWithAllocationPools');
    assert.deepEqual(planAddressingUpdate(n, pools, ip('10.0.0.1').value, '10.0.0.50', [{ start: '10.0.0.100', end: '10.0.0.200' }]), {
      gateway_ip: '10.0.0.50', allocation_pools: [{ start: '10.0.0.100', end: '10.0.0.200' }],
    });
    assert.deepEqual(planAddressingUpdate(n, pools, ip('10.0.0.1').value, null, undefined), { gateway_ip: null });
  });
});

describe('subnet validation (Neutron _validate_subnet)', () => {
  const v4 = (over: Record<string, unknown> = {}) => ({ ip_version: 4 as const, net: net('10.0.0.0/24'), enable_dhcp: true, ...over });
  const v6 = (over: Record<string, unknown> = {}) => ({ ip_version: 6 as const, net: net('2001:db8::/64'), enable_dhcp: true, ...over });

  it('checks the gateway', () => {
    assert.doesNotThrow(() => validateSubnet(v4({ gateway_ip: '10.0.0.254' }), null, 'new subnet'));
    assert.doesNotThrow(() => validateSubnet(v4({ gateway_ip: '192.168.0.1' }), null, 'new subnet'), 'a gateway outside the cidr is on-link');
    throwsNeutron(() => validateSubnet(v4({ gateway_ip: '10.0.0.255' }), null, 'new subnet'), 400, 'InvalidInput', /^Invalid input for operation: Gateway is not valid on subnet.$/);
    throwsNeutron(() => validateSubnet(v4({ gateway_ip: '10.0.0.0' }), null, 'new subnet'), 400, 'InvalidInput');
    throwsNeutron(() => validateSubnet(v4({ gateway_ip: '2001:db8::1' }), null, 'new subnet'), 400, 'InvalidInput',
      /gateway_ip '2001:db8::1' does not match the ip_version '4'/);
  });

  it('refuses prefixes DHCP cannot serve, and only those', () => {
    throwsNeutron(() => validateSubnet(v4({ net: net('10.0.0.1/32') }), null, 'new subnet'), 400, 'InvalidInput',
      /prefix length that is incompatible with DHCP service enabled/);
    throwsNeutron(() => validateSubnet(v6({ net: net('2001:db8::1/128') }), null, 'new subnet'), 400, 'InvalidInput');
    assert.doesNotThrow(() => validateSubnet(v4({ net: net('10.0.0.1/32'), enable_dhcp: false }), null, 'new subnet'));
    throwsNeutron(() => validateSubnet(v4({ net: net('224.0.0.0/24') }), null, 'new subnet'), 400, 'InvalidInput', /Multicast/);
    throwsNeutron(() => validateSubnet(v6({ net: net('::/64') }), null, 'new subnet'), 400, 'InvalidInput', /IPv6 subnet '::' is not supported/);
  });

  it('limits DNS servers and host routes, by version', () => {
    throwsNeutron(() => validateSubnet(v4({ dns_nameservers: ['1.1.1.1', '1.1.1.2', '1.1.1.3', '1.1.1.4', '1.1.1.5', '1.1.1.6'] }), null, 'new subnet'),
      400, 'DNSNameServersExhausted', /^Unable to complete operation for new subnet. The number of DNS nameservers exceeds the limit 5.$/);
    throwsNeutron(() => validateSubnet(v4({ dns_nameservers: ['2001:db8::53'] }), null, 'new subnet'), 400, 'InvalidInput', /dns_nameserver/);
    throwsNeutron(() => validateSubnet(v4({ host_routes: [{ destination: '10.1.0.0/16', nexthop: '2001:db8::1' }] }), null, 'new subnet'),
      400, 'InvalidInput', /nexthop '2001:db8::1' does not match the ip_version '4'/);
    const routes = Array.from({ length: 21 }, (_, i) => ({ destination: `10.${i + 1}.0.0/16`, nexthop: '10.0.0.1' }));
    throwsNeutron(() => validateSubnet(v4({ host_routes: routes }), null, 'new subnet'), 400, 'HostRoutesExhausted');
  });

  it('IPv6 modes: v6 only, with DHCP, equal when both given, /64 for SLAAC', () => {
    throwsNeutron(() => validateSubnet(v4({ ipv6_ra_mode: 'slaac' }), null, 'new subnet'), 400, 'InvalidInput', /ipv6_ra_mode is not valid when ip_version is 4/);
    throwsNeutron(() => validateSubnet(v4({ ipv6_address_mode: 'slaac' }), null, 'new subnet'), 400, 'InvalidInput', /ipv6_address_mode is not valid/);
    throwsNeutron(() => validateSubnet(v6({ ipv6_ra_mode: 'slaac', ipv6_address_mode: 'dhcpv6-stateful' }), null, 'new subnet'), 400, 'InvalidInput',
      /ipv6_ra_mode set to 'slaac' with ipv6_address_mode set to 'dhcpv6-stateful' is not valid/);
    throwsNeutron(() => validateSubnet(v6({ ipv6_address_mode: 'slaac', enable_dhcp: false }), null, 'new subnet'), 400, 'InvalidInput',
      /cannot be set when enable_dhcp is set to False/);
    throwsNeutron(() => validateSubnet(v6({ net: net('2001:db8::/80'), ipv6_address_mode: 'slaac' }), null, 'new subnet'), 400, 'InvalidInput',
      /requires the prefix to be \/64/);
    assert.doesNotThrow(() => validateSubnet(v6({ net: net('2001:db8::/80'), ipv6_address_mode: 'dhcpv6-stateful' }), null, 'new subnet'));
    assert.doesNotThrow(() => validateSubnet(v6({ ipv6_ra_mode: 'slaac' }), null, 'new subnet'));
    throwsNeutron(() => validateSubnet(v6({ enable_dhcp: false }), { enable_dhcp: true, ipv6_ra_mode: 'slaac', ipv6_address_mode: 'slaac' }, 'x'),
      400, 'InvalidInput', /Cannot disable enable_dhcp with ipv6 attributes set/);
  });
});

describe('which addresses a port may hold', () => {
  it('never the IPv4 network or broadcast address; IPv6 anycast only for routers (and owner-less ports)', () => {
    const n4 = net('10.0.0.0/24');
    assert.ok(checkSubnetIp(n4, ip('10.0.0.1'), 'compute:nova'), 'the gateway address itself is allowed, as in Neutron');
    assert.ok(!checkSubnetIp(n4, ip('10.0.0.0'), ''));
    assert.ok(!checkSubnetIp(n4, ip('10.0.0.255'), ''));
    assert.ok(!checkSubnetIp(n4, ip('10.0.1.1'), ''));
    assert.ok(checkSubnetIp(net('10.0.0.0/31'), ip('10.0.0.1'), ''));
    const n6 = net('2001:db8::/64');
    assert.ok(checkSubnetIp(n6, ip('2001:db8::'), 'network:router_gateway'));
    assert.ok(!checkSubnetIp(n6, ip('2001:db8::'), 'compute:nova'));
    assert.ok(checkSubnetIp(n6, ip('2001:db8::ffff:ffff:ffff:ffff'), 'compute:nova'));
  });

  it('computes modified EUI-64 addresses from the MAC', () => {
    const a = eui64Address(net('2001:db8::/64'), 'fa:16:3e:5d:c8:ff');
    assert.equal(formatIp(6, a), '2001:db8::f816:3eff:fe5d:c8ff');
    assert.ok(isEui64(a));
    assert.ok(!isEui64(ip('2001:db8::5').value));
    assert.equal(formatIp(6, eui64Address(net('fd00:1:2:3::/64'), '00:00:5e:00:53:01')), 'fd00:1:2:3:200:5eff:fe00:5301');
  });
});
