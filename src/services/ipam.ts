// IP address management, in three layers:
//   1. address math (pure): parsing, canonical text, CIDR blocks, ranges;
//   2. Neutron's subnet rules (pure): default gateway and pools, pool
//      validation, which addresses a port may hold, EUI-64;
//   3. allocation (inside the caller's transaction): which subnets a port
//      draws from, picking free addresses, storing them.
//
// Addresses are bigints in memory and canonical text in the store: dotted quad
// for IPv4, RFC 5952 for IPv6 (lower case, the first longest run of two or more
// zero groups compressed), which is also what netaddr prints for Neutron. Equal
// text therefore means equal address, and the ip_allocations primary key
// (subnet_id, ip_address) is an exact guard against double allocation.
import crypto from 'node:crypto';
import ipaddr from 'ipaddr.js';
import {
  AllocationOnAutoAddressSubnet, DNSNameServersExhausted, GatewayConflictWithAllocationPools, HostRoutesExhausted,
  InvalidAllocationPool, InvalidInput, InvalidIpForNetwork, InvalidIpForSubnet, IpAddressAlreadyAllocated,
  IpAddressGenerationFailure, IpAddressGenerationFailureNoMatchingSubnet, OutOfBoundsAllocationPool,
  OverlappingAllocationPools, ResourceNotFound,
} from '../errors.ts';
import type { Dialect, Tx } from '../store/database.ts';
import type { Row } from './resource-store.ts';

// =================================================================== 1. math

export type IpVersion = 4 | 6;
export interface Ip { version: IpVersion; value: bigint }
/** A CIDR block: its first and last address, inclusive. */
export interface Net { version: IpVersion; prefixlen: number; first: bigint; last: bigint }
/** An inclusive address range (an allocation pool). */
export interface IpRange { first: bigint; last: bigint }

export const maxPrefixlen = (v: IpVersion): number => (v === 4 ? 32 : 128);

/** Python's %s of a value, for messages that quote the caller's input. */
export function pyStr(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

const V4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function v4Octets(text: string): number[] | null {
  const m = V4_RE.exec(text);
  if (!m) return null;
  const octets = m.slice(1).map(Number);
  return octets.every((o) => o <= 255) ? octets : null;
}

/**
 * A strictly written address, or null. Like Neutron: IPv4 only as four decimal
 * parts without leading zeros (010 could be octal), IPv6 without zone index.
 */
export function parseIp(text: unknown): Ip | null {
  if (typeof text !== 'string') return null;
  const octets = v4Octets(text);
  if (octets) {
    if (text.split('.').some((p) => p.length > 1 && p[0] === '0')) return null;
    return { version: 4, value: BigInt(((octets[0] * 256 + octets[1]) * 256 + octets[2]) * 256 + octets[3]) };
  }
  if (!text.includes(':') || text.includes('%') || !ipaddr.IPv6.isValid(text)) return null;
  let value = 0n;
  for (const b of ipaddr.IPv6.parse(text).toByteArray()) value = (value << 8n) | BigInt(b);
  return { version: 6, value };
}

/** Neutron's validate_ip_address message for text that is not an address, else null. */
export function ipAddressError(text: unknown): string | null {
  if (parseIp(text) !== null) return null;
  const octets = typeof text === 'string' ? v4Octets(text) : null;
  if (octets) return `'${text}' is not an accepted IP address, '${octets.join('.')}' is recommended`;
  return `'${pyStr(text)}' is not a valid IP address`;
}

function formatV4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => Number((value >> s) & 0xffn)).join('.');
}

/** Canonical text of an address. */
export function formatIp(version: IpVersion, value: bigint): string {
  if (version === 4) return formatV4(value);
  // IPv4-mapped addresses keep their dotted tail, as netaddr prints them.
  if (value >> 32n === 0xffffn) return `::ffff:${formatV4(value & 0xffffffffn)}`;
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 1; // RFC 5952: a single zero group is not compressed
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/** Canonical text of an address given as text (which must be valid). */
export function canonicalIp(text: string): string {
  const ip = parseIp(text);
  if (!ip) throw new Error(`not an IP address: ${text}`);
  return formatIp(ip.version, ip.value);
}

/** Dotted netmask → prefix length, or null when not a contiguous mask. */
function maskPrefix(mask: string): number | null {
  const ip = parseIp(mask);
  if (!ip || ip.version !== 4) return null;
  const bits = ip.value.toString(2).padStart(32, '0');
  if (!/^1*0*$/.test(bits)) return null;
  return bits.replace(/0+$/, '').length;
}

/**
 * An address with a prefix length, host bits as given, or null. A bare address
 * is a host route (/32, /128) and a dotted netmask is accepted, as netaddr's
 * IPNetwork (and therefore Neutron) accepts both.
 */
export function parseCidr(text: unknown): { ip: Ip; prefixlen: number } | null {
  if (typeof text !== 'string') return null;
  const parts = text.split('/');
  if (parts.length > 2) return null;
  const ip = parseIp(parts[0]);
  if (!ip) return null;
  if (parts.length === 1) return { ip, prefixlen: maxPrefixlen(ip.version) };
  let prefixlen: number | null = /^\d{1,3}$/.test(parts[1]) ? Number(parts[1]) : null;
  if (prefixlen === null && ip.version === 4) prefixlen = maskPrefix(parts[1]);
  if (prefixlen === null || prefixlen > maxPrefixlen(ip.version)) return null;
  return { ip, prefixlen };
}

/** The block an address lies in, for a prefix length. */
export function netOf(ip: Ip, prefixlen: number): Net {
  const hostBits = BigInt(maxPrefixlen(ip.version) - prefixlen);
  const hostmask = (1n << hostBits) - 1n;
  const first = ip.value & ~hostmask;
  return { version: ip.version, prefixlen, first, last: first | hostmask };
}

/** A CIDR given as text, normalized to its block (host bits cleared). */
export function parseNet(text: string): Net | null {
  const c = parseCidr(text);
  return c ? netOf(c.ip, c.prefixlen) : null;
}

export function formatNet(net: Net): string {
  return `${formatIp(net.version, net.first)}/${net.prefixlen}`;
}

export function netContains(net: Net, ip: Ip): boolean {
  return ip.version === net.version && ip.value >= net.first && ip.value <= net.last;
}

export function netsOverlap(a: Net, b: Net): boolean {
  return a.version === b.version && a.first <= b.last && b.first <= a.last;
}

/** netaddr's text of a range: "first-last". */
export function formatRange(version: IpVersion, r: IpRange): string {
  return `${formatIp(version, r.first)}-${formatIp(version, r.last)}`;
}

export function rangeSize(ranges: IpRange[]): bigint {
  return ranges.reduce((n, r) => n + (r.last - r.first + 1n), 0n);
}

/** The index-th address of the ranges taken in order. */
export function addressAt(ranges: IpRange[], index: bigint): bigint {
  let i = index;
  for (const r of ranges) {
    const size = r.last - r.first + 1n;
    if (i < size) return r.first + i;
    i -= size;
  }
  throw new RangeError('index beyond ranges');
}

/** Uniform in [0, n); bias below 2^-64 for IPv6-sized n. */
export function randomBelow(n: bigint): bigint {
  if (n <= 0n) throw new RangeError('empty range');
  if (n <= BigInt(Number.MAX_SAFE_INTEGER)) return BigInt(Math.floor(Math.random() * Number(n)));
  let r = 0n;
  for (const b of crypto.randomBytes(24)) r = (r << 8n) | BigInt(b);
  return r % n;
}

// ========================================================= 2. subnet rules

export const IPV6_MODES = ['dhcpv6-stateful', 'dhcpv6-stateless', 'slaac'] as const;
/** neutron.conf defaults: max_dns_nameservers, max_subnet_host_routes. */
export const MAX_DNS_NAMESERVERS = 5;
export const MAX_HOST_ROUTES = 20;

/** Owners that are router interfaces (neutron_lib ROUTER_INTERFACE_OWNERS). */
export const ROUTER_INTERFACE_OWNERS = new Set([
  'network:router_interface', 'network:ha_router_replicated_interface', 'network:router_interface_distributed',
]);
/** ... plus the centralized SNAT port (ROUTER_INTERFACE_OWNERS_SNAT). */
export const ROUTER_INTERFACE_OWNERS_SNAT = new Set([...ROUTER_INTERFACE_OWNERS, 'network:router_centralized_snat']);
/** ... plus the gateway port (ROUTER_PORT_OWNERS). */
export const ROUTER_PORT_OWNERS = new Set([...ROUTER_INTERFACE_OWNERS_SNAT, 'network:router_gateway']);
/** Ports Neutron removes by itself; they never keep a subnet or network in use. */
export const AUTO_DELETE_PORT_OWNERS = new Set(['network:dhcp', 'network:distributed', 'network:floatingip_agent_gateway']);

export interface PoolText { start: string; end: string }
export interface HostRoute { destination: string; nexthop: string }

/** SLAAC and DHCPv6-stateless subnets: addresses are EUI-64, computed from the MAC. */
export function isAutoAddressSubnet(s: { ipv6_ra_mode?: string | null; ipv6_address_mode?: string | null }): boolean {
  const auto = (m?: string | null) => m === 'slaac' || m === 'dhcpv6-stateless';
  return auto(s.ipv6_address_mode) || auto(s.ipv6_ra_mode);
}

/**
 * Neutron's default gateway: the first address after the network address, on
 * IPv4 and IPv6 alike. (Neutron's _gateway_ip_str has an IPv6 branch for the
 * network address, but it tests subnet['version'] while the API dict carries
 * 'ip_version', so real clients get ::1; we match what they see.)
 */
export function defaultGateway(net: Net): bigint {
  return net.first + 1n;
}

/**
 * The range allocation pools must stay within: IPv4 loses the network and
 * broadcast addresses (except /31 and /32, which have none), IPv6 loses the
 * subnet-router anycast address.
 */
export function usableRange(net: Net): IpRange {
  if (net.version === 4) return net.prefixlen <= 30 ? { first: net.first + 1n, last: net.last - 1n } : { first: net.first, last: net.last };
  return { first: net.first + 1n, last: net.last };
}

/** Default pools: the usable range minus the gateway (neutron.ipam.utils.generate_pools). */
export function generatePools(net: Net, gateway: bigint | null): IpRange[] {
  if (net.first === net.last) return [{ first: net.first, last: net.last }];
  const r = usableRange(net);
  if (gateway === null || gateway < r.first || gateway > r.last) return [r];
  const out: IpRange[] = [];
  if (gateway > r.first) out.push({ first: r.first, last: gateway - 1n });
  if (gateway < r.last) out.push({ first: gateway + 1n, last: r.last });
  return out;
}

const pyPool = (p: PoolText) => `{'start': '${pyStr(p.start)}', 'end': '${pyStr(p.end)}'}`;

/** Pools as ranges of the subnet's version; start after end, or mixed versions, is an invalid pool. */
export function parsePools(pools: PoolText[], version: IpVersion): IpRange[] {
  return pools.map((p) => {
    const start = parseIp(p.start);
    const end = parseIp(p.end);
    if (!start || !end || start.version !== end.version || start.value > end.value) throw new InvalidAllocationPool(pyPool(p));
    const r = { first: start.value, last: end.value };
    if (start.version !== version) throw new InvalidAllocationPool(formatRange(start.version, r));
    return r;
  });
}

export function formatPools(version: IpVersion, pools: IpRange[]): PoolText[] {
  return pools.map((p) => ({ start: formatIp(version, p.first), end: formatIp(version, p.last) }));
}

/** Every pool inside the usable range, no two overlapping (IpamBackendMixin.validate_allocation_pools). */
export function validateAllocationPools(pools: IpRange[], net: Net): void {
  const bounds = usableRange(net);
  const cidr = formatNet(net);
  for (const p of pools) {
    if (p.first < bounds.first || p.last > bounds.last) throw new OutOfBoundsAllocationPool(formatRange(net.version, p), cidr);
  }
  for (let i = 0; i < pools.length; i++) {
    for (let j = i + 1; j < pools.length; j++) {
      if (pools[i].first <= pools[j].last && pools[j].first <= pools[i].last) {
        throw new OverlappingAllocationPools(formatRange(net.version, pools[i]), formatRange(net.version, pools[j]), cidr);
      }
    }
  }
}

export function validateGatewayOutOfPools(version: IpVersion, gateway: bigint, pools: IpRange[]): void {
  const hit = pools.find((p) => gateway >= p.first && gateway <= p.last);
  if (hit) throw new GatewayConflictWithAllocationPools(formatIp(version, gateway), formatRange(version, hit));
}

/**
 * Whether a port may hold the address on the subnet (ipam.utils.check_subnet_ip):
 * IPv4 never the network or broadcast address; IPv6 the subnet-router anycast
 * address only for router ports (and, as in Neutron, an owner-less port).
 */
export function checkSubnetIp(net: Net, ip: Ip, owner: string): boolean {
  if (!netContains(net, ip)) return false;
  if (net.version === 4) {
    const broadcast = net.prefixlen >= 31 ? null : net.last;
    return ip.value !== net.first && ip.value !== broadcast;
  }
  return owner === '' || ROUTER_PORT_OWNERS.has(owner) || ip.value !== net.first;
}

/** Gateway on the network or (IPv4) broadcast address; a gateway outside the cidr is allowed (on-link). */
export function gatewayInvalidOnSubnet(net: Net, gw: Ip): boolean {
  return netContains(net, gw) && net.version === 4 && (gw.value === net.first || gw.value === net.last);
}

function macValue(mac: string): bigint {
  return BigInt(`0x${mac.replace(/[:-]/g, '')}`);
}

/** The modified EUI-64 address of a MAC in a prefix (oslo netutils.get_ipv6_addr_by_EUI64). */
export function eui64Address(net: Net, mac: string): bigint {
  const m = macValue(mac);
  const eui = ((m >> 24n) << 40n) | (0xfffen << 24n) | (m & 0xffffffn);
  return (net.first + (eui ^ (1n << 57n))) & ((1n << 128n) - 1n);
}

export function isEui64(value: bigint): boolean {
  return (value & 0xffff000000n) === 0xfffe000000n;
}

function checkVersion(version: IpVersion, text: string, name: string, ipVersionOf: number | undefined): void {
  if (ipVersionOf !== version) throw new InvalidInput(`${name} '${text}' does not match the ip_version '${version}'`);
}

/** The ip version of an address or CIDR text (already validated by the converters). */
function versionOf(text: string): number | undefined {
  return parseCidr(text)?.ip.version;
}

export interface SubnetFields {
  ip_version: IpVersion;
  net: Net;
  enable_dhcp?: boolean;
  gateway_ip?: string | null;
  dns_nameservers?: string[];
  host_routes?: HostRoute[];
  ipv6_ra_mode?: string | null;
  ipv6_address_mode?: string | null;
}

/**
 * Neutron's _validate_subnet: the checks that do not need the database. On
 * create `spec` is the whole request; on update it holds only what changes and
 * `current` is the stored subnet. `label` names the subnet in quota messages.
 */
export function validateSubnet(spec: SubnetFields, current: { enable_dhcp: boolean; ipv6_ra_mode: string | null; ipv6_address_mode: string | null } | null, label: string): void {
  const { ip_version: v, net } = spec;
  if (v === 6 && net.first === 0n) throw new InvalidInput("IPv6 subnet '::' is not supported");
  if (spec.enable_dhcp && !(current?.enable_dhcp)) {
    if ((v === 4 && net.prefixlen > 30) || (v === 6 && net.prefixlen > 126)) {
      throw new InvalidInput('Subnet has a prefix length that is incompatible with DHCP service enabled');
    }
    const first = { version: v, value: net.first };
    if (isMulticast(first)) throw new InvalidInput('Multicast IP subnet is not supported if enable_dhcp is True');
    if (isLoopback(first)) throw new InvalidInput('Loopback IP subnet is not supported if enable_dhcp is True');
    if (v === 4 && net.first === 0n) throw new InvalidInput("First IP '0.0.0.0' of network is not supported if enable_dhcp is True.");
  }
  if (spec.gateway_ip) {
    checkVersion(v, spec.gateway_ip, 'gateway_ip', versionOf(spec.gateway_ip));
    if (gatewayInvalidOnSubnet(net, parseIp(spec.gateway_ip)!)) throw new InvalidInput('Gateway is not valid on subnet');
  }
  if (spec.dns_nameservers) {
    if (spec.dns_nameservers.length > MAX_DNS_NAMESERVERS) throw new DNSNameServersExhausted(label, MAX_DNS_NAMESERVERS);
    for (const dns of spec.dns_nameservers) checkVersion(v, dns, 'dns_nameserver', versionOf(dns));
  }
  if (spec.host_routes) {
    if (spec.host_routes.length > MAX_HOST_ROUTES) throw new HostRoutesExhausted(label, MAX_HOST_ROUTES);
    for (const rt of spec.host_routes) {
      checkVersion(v, rt.nexthop, 'nexthop', versionOf(rt.nexthop));
      checkVersion(v, rt.destination, 'destination', versionOf(rt.destination));
    }
  }
  const raSet = spec.ipv6_ra_mode != null;
  const addrSet = spec.ipv6_address_mode != null;
  if (v === 4) {
    if (raSet) throw new InvalidInput('ipv6_ra_mode is not valid when ip_version is 4');
    if (addrSet) throw new InvalidInput('ipv6_address_mode is not valid when ip_version is 4');
    return;
  }
  if (current) {
    // On update the modes are read-only; only turning DHCP off can clash with them.
    if (spec.enable_dhcp === false && (current.ipv6_ra_mode || current.ipv6_address_mode)) {
      throw new InvalidInput('Cannot disable enable_dhcp with ipv6 attributes set');
    }
    return;
  }
  if ((raSet || addrSet) && !spec.enable_dhcp) {
    throw new InvalidInput('ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False');
  }
  if (raSet && addrSet && spec.ipv6_ra_mode !== spec.ipv6_address_mode) {
    throw new InvalidInput(`ipv6_ra_mode set to '${spec.ipv6_ra_mode}' with ipv6_address_mode set to '${spec.ipv6_address_mode}' is not valid. If both attributes are set, they must be the same value`);
  }
  if ((raSet || addrSet) && isAutoAddressSubnet(spec) && net.prefixlen !== 64) {
    throw new InvalidInput(`Invalid CIDR ${formatNet(net)} for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64`);
  }
}

function isMulticast(ip: Ip): boolean {
  return ip.version === 4 ? ip.value >> 28n === 0xen : ip.value >> 120n === 0xffn;
}

function isLoopback(ip: Ip): boolean {
  return ip.version === 4 ? ip.value >> 24n === 127n : ip.value === 1n;
}

/**
 * Gateway and pools of a new subnet (IpamBackendMixin: _gateway_ip_str and
 * _prepare_allocation_pools): defaults when absent, validated when given.
 */
export function planAddressing(net: Net, gatewayIp: string | null | undefined, pools: PoolText[] | undefined): { gateway_ip: string | null; allocation_pools: PoolText[] } {
  const gateway = gatewayIp === undefined ? defaultGateway(net) : gatewayIp === null ? null : parseIp(gatewayIp)!.value;
  let ranges: IpRange[];
  if (pools === undefined) {
    ranges = generatePools(net, gateway);
  } else {
    ranges = parsePools(pools, net.version);
    validateAllocationPools(ranges, net);
    if (gateway !== null) validateGatewayOutOfPools(net.version, gateway, ranges);
  }
  return {
    gateway_ip: gateway === null ? null : formatIp(net.version, gateway),
    allocation_pools: formatPools(net.version, ranges),
  };
}

/**
 * Gateway and pools after an update (Neutron's _update_subnet_precommit): new
 * pools are validated, and when the gateway or the pools change the gateway
 * must stay out of the pools. Returns only what changes.
 */
export function planAddressingUpdate(
  net: Net, currentPools: IpRange[], currentGateway: bigint | null,
  gatewayIp: string | null | undefined, pools: PoolText[] | undefined,
): { gateway_ip?: string | null; allocation_pools?: PoolText[] } {
  const out: { gateway_ip?: string | null; allocation_pools?: PoolText[] } = {};
  let ranges = currentPools;
  if (pools !== undefined) {
    ranges = parsePools(pools, net.version);
    validateAllocationPools(ranges, net);
    out.allocation_pools = formatPools(net.version, ranges);
  }
  const gateway = gatewayIp === undefined ? currentGateway : gatewayIp === null ? null : parseIp(gatewayIp)!.value;
  if (gatewayIp !== undefined) out.gateway_ip = gateway === null ? null : formatIp(net.version, gateway);
  if ((gateway !== currentGateway || pools !== undefined) && gateway !== null) validateGatewayOutOfPools(net.version, gateway, ranges);
  return out;
}

// ============================================================ 3. allocation

/** What allocation needs to know about a subnet, decoded once from its row. */
export interface SubnetInfo {
  id: string;
  networkId: string;
  version: IpVersion;
  net: Net;
  gateway: bigint | null;
  pools: IpRange[];
  auto: boolean;
  serviceTypes: string[];
}

export function subnetInfo(row: Row): SubnetInfo {
  const net = parseNet(row.cidr)!;
  return {
    id: row.id,
    networkId: row.network_id,
    version: net.version,
    net,
    gateway: row.gateway_ip ? parseIp(row.gateway_ip)!.value : null,
    pools: parsePools(JSON.parse(row.allocation_pools) as PoolText[], net.version),
    auto: net.version === 6 && isAutoAddressSubnet(row),
    serviceTypes: JSON.parse(row.service_types ?? '[]') as string[],
  };
}

/**
 * The network's subnets in creation order. On PostgreSQL they are locked FOR
 * UPDATE (in id order, so that two writers never wait on each other in a
 * cycle): concurrent allocations on a network then run one after another and
 * each sees what the previous one stored. SQLite transactions are serial.
 */
export async function lockNetworkSubnets(tx: Tx, dialect: Dialect, networkId: string): Promise<Array<SubnetInfo & { createdAt: string }>> {
  let q = tx.selectFrom('subnets').selectAll().where('network_id', '=', networkId).orderBy('id');
  if (dialect === 'postgres') q = q.forUpdate();
  const rows = await q.execute();
  rows.sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id < b.id ? -1 : 1));
  return rows.map((r) => ({ ...subnetInfo(r), createdAt: r.created_at }));
}

export interface PortAddressing { id: string; network_id: string; mac_address: string; device_owner: string }
export interface FixedIpRequest { subnet_id?: string; ip_address?: string }
export interface FixedIp { subnet_id: string; ip_address: string }

/** One planned address: a given one on a subnet, or any free one from the first of `subnets` that has one. */
type Want = { subnet: SubnetInfo; ip: bigint } | { subnets: SubnetInfo[] };

/**
 * Subnets a port may draw from: those without service types, and those whose
 * service types include the port's device owner, the latter first (Neutron's
 * find_candidate_subnets and _ipam_get_subnets).
 */
export function candidateSubnets<T extends SubnetInfo>(subnets: T[], port: PortAddressing): T[] {
  if (subnets.length === 0) return [];
  const typed = subnets.filter((s) => s.serviceTypes.length > 0 && s.serviceTypes.includes(port.device_owner));
  const plain = subnets.filter((s) => s.serviceTypes.length === 0);
  if (typed.length + plain.length === 0) throw new IpAddressGenerationFailureNoMatchingSubnet(port.network_id, port.device_owner);
  return [...typed, ...plain];
}

/**
 * Requested fixed IPs → planned addresses (Neutron's _get_subnet_for_fixed_ip
 * and _test_fixed_ips_for_port). A requested address may lie outside the pools
 * but must be a valid host of its subnet.
 */
async function resolveRequested(tx: Tx, port: PortAddressing, requested: FixedIpRequest[], subnets: SubnetInfo[]): Promise<Want[]> {
  if (requested.length && subnets.length === 0) throw new InvalidInput('IP allocation requires subnets for network');
  const out: Want[] = [];
  for (const fixed of requested) {
    const ip = fixed.ip_address !== undefined ? parseIp(fixed.ip_address)! : null;
    let subnet: SubnetInfo | undefined;
    if (fixed.subnet_id !== undefined) {
      subnet = subnets.find((s) => s.id === fixed.subnet_id);
      if (!subnet) {
        const exists = await tx.selectFrom('subnets').select('id').where('id', '=', fixed.subnet_id).executeTakeFirst();
        if (!exists) throw new ResourceNotFound('subnet', fixed.subnet_id);
        throw new InvalidInput(`Failed to create port on network ${port.network_id}, because fixed_ips included invalid subnet ${fixed.subnet_id}`);
      }
      if (ip && !checkSubnetIp(subnet.net, ip, port.device_owner)) throw new InvalidIpForSubnet(fixed.ip_address!);
    } else {
      if (!ip) throw new InvalidInput('IP allocation requires subnet_id or ip_address');
      subnet = subnets.find((s) => checkSubnetIp(s.net, ip, port.device_owner));
      if (!subnet) throw new InvalidIpForNetwork(fixed.ip_address!);
    }
    if (ip) {
      // On SLAAC subnets only the port's own EUI-64 address may be asked for, except by routers.
      if (subnet.auto && !ROUTER_INTERFACE_OWNERS.has(port.device_owner) && ip.value !== eui64Address(subnet.net, port.mac_address)) {
        throw new AllocationOnAutoAddressSubnet(fixed.ip_address!, subnet.id);
      }
      out.push({ subnet, ip: ip.value });
    } else if (ROUTER_INTERFACE_OWNERS_SNAT.has(port.device_owner) || !subnet.auto) {
      out.push({ subnets: [subnet] });
    }
    // A bare subnet_id of a SLAAC subnet needs nothing here: autoAddresses covers every such subnet.
  }
  return out;
}

/** EUI-64 addresses on every SLAAC/DHCPv6-stateless subnet not already handled; routers get none. */
function autoAddresses(subnets: SubnetInfo[], port: PortAddressing, handled: Set<string>): Want[] {
  if (ROUTER_INTERFACE_OWNERS_SNAT.has(port.device_owner)) return [];
  return subnets.filter((s) => s.auto && !handled.has(s.id)).map((s) => ({ subnet: s, ip: eui64Address(s.net, port.mac_address) }));
}

/** Below this many pool addresses a subnet is scanned rather than probed. */
const SCAN_BELOW = 64n;
const PROBES = 8;

/**
 * A free address of the subnet's pools, or null when they are full. Large
 * pools are probed at random (one indexed query checks a batch of candidates),
 * so the cost does not grow with the number of ports; small or nearly full
 * pools fall back to a scan for the first gap.
 */
export async function pickFreeAddress(tx: Tx, subnet: SubnetInfo): Promise<bigint | null> {
  const size = rangeSize(subnet.pools);
  if (size === 0n) return null;
  if (size >= SCAN_BELOW) {
    for (let round = 0; round < 2; round++) {
      const candidates = new Map<string, bigint>();
      for (let i = 0; i < PROBES; i++) {
        const v = addressAt(subnet.pools, randomBelow(size));
        candidates.set(formatIp(subnet.version, v), v);
      }
      const taken = await tx.selectFrom('ip_allocations').select('ip_address')
        .where('subnet_id', '=', subnet.id).where('ip_address', 'in', [...candidates.keys()]).execute();
      for (const t of taken) candidates.delete(t.ip_address);
      const free = candidates.values().next();
      if (!free.done) return free.value;
    }
  }
  return scanForFree(tx, subnet);
}

/** The first address of the pools that no allocation holds; work bounded by the allocations. */
async function scanForFree(tx: Tx, subnet: SubnetInfo): Promise<bigint | null> {
  const rows = await tx.selectFrom('ip_allocations').select('ip_address').where('subnet_id', '=', subnet.id).execute();
  const used = new Set<bigint>();
  for (const r of rows) {
    const ip = parseIp(r.ip_address);
    if (ip) used.add(ip.value);
  }
  for (const pool of subnet.pools) {
    for (let v = pool.first; v <= pool.last; v++) if (!used.has(v)) return v;
  }
  return null;
}

/**
 * Stores one address. The primary key decides: ON CONFLICT DO NOTHING turns a
 * taken address into "no row inserted" (one statement, and on PostgreSQL no
 * aborted transaction), reported as Neutron's IpAddressAlreadyAllocated.
 */
async function claim(tx: Tx, port: PortAddressing, subnet: SubnetInfo, value: bigint): Promise<FixedIp> {
  const ip = formatIp(subnet.version, value);
  const r = await tx.insertInto('ip_allocations')
    .values({ subnet_id: subnet.id, ip_address: ip, port_id: port.id, network_id: port.network_id })
    .onConflict((oc) => oc.doNothing()).executeTakeFirst();
  if (Number(r.numInsertedOrUpdatedRows ?? 0n) !== 1) throw new IpAddressAlreadyAllocated(ip, subnet.id);
  return { subnet_id: subnet.id, ip_address: ip };
}

/** Stores planned addresses: given ones first, so that "any free" cannot take an address asked for explicitly. */
async function store(tx: Tx, port: PortAddressing, wants: Want[]): Promise<FixedIp[]> {
  const out: FixedIp[] = [];
  for (const w of wants) if ('ip' in w) out.push(await claim(tx, port, w.subnet, w.ip));
  for (const w of wants) {
    if ('ip' in w) continue;
    let got: FixedIp | null = null;
    for (const subnet of w.subnets) {
      const v = await pickFreeAddress(tx, subnet);
      if (v !== null) { got = await claim(tx, port, subnet, v); break; }
    }
    if (!got) throw new IpAddressGenerationFailure(port.network_id);
    out.push(got);
  }
  return out;
}

/**
 * Addresses for a new port (Neutron's _allocate_ips_for_port). Without a
 * request: one address from the first IPv4 subnet with room, one from the first
 * stateful IPv6 subnet with room, and the EUI-64 address on each SLAAC subnet.
 * With a request: exactly what it asks, plus the SLAAC addresses.
 */
export async function allocateFixedIps(
  tx: Tx, port: PortAddressing, networkSubnets: SubnetInfo[], requested: FixedIpRequest[] | undefined,
): Promise<FixedIp[]> {
  const subnets = candidateSubnets(networkSubnets, port);
  let wants: Want[];
  if (requested !== undefined) {
    wants = await resolveRequested(tx, port, requested, subnets);
  } else {
    const v4 = subnets.filter((s) => s.version === 4);
    const v6Stateful = subnets.filter((s) => s.version === 6 && !s.auto);
    wants = [v4, v6Stateful].filter((g) => g.length > 0).map((g) => ({ subnets: g }));
  }
  // A port that asked for its own EUI-64 address explicitly gets it once.
  wants.push(...autoAddresses(subnets, port, new Set(wants.flatMap((w) => ('ip' in w ? [w.subnet.id] : [])))));
  return store(tx, port, wants);
}

/**
 * New addresses for an existing port (Neutron's _get_changed_ips_for_port and
 * _update_ips_for_port): requested addresses the port already holds are kept,
 * a bare subnet_id keeps the port's address on that subnet, the rest are
 * released and then new ones allocated, in one transaction. SLAAC addresses
 * stay unless the port is a router's.
 */
export async function updateFixedIps(
  tx: Tx, port: PortAddressing, networkSubnets: SubnetInfo[], current: FixedIp[], requested: FixedIpRequest[],
): Promise<void> {
  const subnets = candidateSubnets(networkSubnets, port);
  const byId = new Map(networkSubnets.map((s) => [s.id, s]));
  const add: FixedIpRequest[] = [];
  const keep: FixedIp[] = [];
  const removeCandidates: FixedIp[] = [];
  const origByIp = new Map(current.map((f) => [f.ip_address, f]));
  for (const r of requested) {
    if (r.ip_address === undefined) continue;
    const orig = origByIp.get(canonicalIp(r.ip_address));
    if (orig) { keep.push(orig); origByIp.delete(orig.ip_address); } else add.push(r);
  }
  const origBySubnet = new Map<string, FixedIp[]>();
  for (const f of origByIp.values()) origBySubnet.set(f.subnet_id, [...(origBySubnet.get(f.subnet_id) ?? []), f]);
  for (const r of requested) {
    if (r.ip_address !== undefined) continue;
    const orig = origBySubnet.get(r.subnet_id!)?.pop();
    if (!orig) { add.push(r); continue; }
    if (isEui64(parseIp(orig.ip_address)!.value)) { add.push(r); removeCandidates.push(orig); } else keep.push(orig);
  }
  const remove: FixedIp[] = [];
  for (const f of [...[...origBySubnet.values()].flat(), ...removeCandidates]) {
    const subnet = byId.get(f.subnet_id);
    const required = ROUTER_INTERFACE_OWNERS_SNAT.has(port.device_owner) || !subnet?.auto;
    if (required) remove.push(f); else keep.push(f);
  }
  const wants = await resolveRequested(tx, port, add, subnets);
  // Released addresses are free for the additions of this same update, as in Neutron.
  for (const f of remove) {
    await tx.deleteFrom('ip_allocations').where('port_id', '=', port.id)
      .where('subnet_id', '=', f.subnet_id).where('ip_address', '=', f.ip_address).execute();
  }
  const handled = new Set([...wants.flatMap((w) => ('ip' in w ? [w.subnet.id] : w.subnets.map((s) => s.id))), ...keep.map((f) => f.subnet_id), ...remove.map((f) => f.subnet_id)]);
  wants.push(...autoAddresses(subnets, port, handled));
  await store(tx, port, wants);
}

/**
 * After a MAC change, the port's EUI-64 addresses follow the new MAC (Neutron's
 * update_port_with_ips re-allocates them from the SLAAC subnets).
 */
export async function refreshEui64Addresses(tx: Tx, port: PortAddressing, networkSubnets: SubnetInfo[]): Promise<void> {
  const auto = new Map(networkSubnets.filter((s) => s.auto).map((s) => [s.id, s]));
  if (auto.size === 0) return;
  const held = await tx.selectFrom('ip_allocations').select(['subnet_id', 'ip_address']).where('port_id', '=', port.id).execute();
  const stale = held.filter((f) => auto.has(f.subnet_id) && isEui64(parseIp(f.ip_address)!.value));
  for (const f of stale) {
    await tx.deleteFrom('ip_allocations').where('port_id', '=', port.id)
      .where('subnet_id', '=', f.subnet_id).where('ip_address', '=', f.ip_address).execute();
  }
  for (const f of stale) {
    const subnet = auto.get(f.subnet_id)!;
    await claim(tx, port, subnet, eui64Address(subnet.net, port.mac_address));
  }
}

/**
 * The EUI-64 addresses a new SLAAC subnet gives the ports already on its
 * network (Neutron's add_auto_addrs_on_network_ports); router interfaces get
 * none. Returns the ids of the ports that gained an address.
 */
export async function addAutoAddressesToPorts(tx: Tx, dialect: Dialect, subnet: SubnetInfo): Promise<string[]> {
  let q = tx.selectFrom('ports').select(['id', 'mac_address', 'device_owner']).where('network_id', '=', subnet.networkId).orderBy('id');
  if (dialect === 'postgres') q = q.forUpdate();
  const ports = (await q.execute()).filter((p) => !ROUTER_INTERFACE_OWNERS_SNAT.has(p.device_owner));
  const out: string[] = [];
  for (const p of ports) {
    // An address some router already took explicitly is skipped, as Neutron does.
    const r = await tx.insertInto('ip_allocations')
      .values({ subnet_id: subnet.id, ip_address: formatIp(6, eui64Address(subnet.net, p.mac_address)), port_id: p.id, network_id: subnet.networkId })
      .onConflict((oc) => oc.doNothing()).executeTakeFirst();
    if (Number(r.numInsertedOrUpdatedRows ?? 0n) === 1) out.push(p.id);
  }
  return out;
}
