// Subnets (neutron_lib/api/definitions/subnet.py), attributes in the wire order
// of a real Neutron's POST /v2.0/subnets answer. Converters check the shape of
// each value and put addresses in canonical form; the rules that relate
// attributes to each other (gateway inside the cidr, pools, IPv6 modes) are in
// services/ipam.ts.
import { AttributeError, bool, nullable, oneOf, standardAttributes, str, uuid, type Converter, type ResourceDef } from './attributes.ts';
import { InvalidInput } from '../errors.ts';
import {
  IPV6_MODES, canonicalIp, formatIp, ipAddressError, parseCidr, pyStr, type HostRoute, type PoolText,
} from '../services/ipam.ts';

/** convert_to_int (an InvalidInput) then type:values [4, 6] (a bad attribute). */
export const ipVersion: Converter = (v) => {
  const n = typeof v === 'number' ? Math.trunc(v) : typeof v === 'string' && /^\s*[+-]?\d+\s*$/.test(v) ? Number(v) : NaN;
  if (typeof v === 'boolean' || !Number.isFinite(n)) throw new InvalidInput(`'${pyStr(v)}' is not an integer`);
  if (n !== 4 && n !== 6) throw new AttributeError(`${n} is not in [4, 6]`);
  return n;
};

/** An IP address, in canonical form (convert_ip_to_canonical_format + type:ip_address). */
export const ipAddress: Converter = (v) => {
  const err = ipAddressError(v);
  if (err) throw new AttributeError(err);
  return canonicalIp(v as string);
};

/**
 * convert_cidr_to_canonical_format: anything netaddr cannot read is an
 * InvalidInput; the address keeps its host bits here (the subnet service
 * clears them, as Neutron does) and IPv6 is compressed.
 */
export const cidr: Converter = (v) => {
  const c = parseCidr(v);
  if (!c) throw new InvalidInput(`${pyStr(v)} is not in a CIDR format`);
  return `${formatIp(c.ip.version, c.ip.value)}/${c.prefixlen}`;
};

function dictWithKeys(v: unknown, keys: string[]): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new AttributeError(`Invalid input. '${pyStr(v)}' must be a dictionary with keys: ${JSON.stringify(keys)}`);
  }
  const got = Object.keys(v);
  if (got.length !== keys.length || !keys.every((k) => got.includes(k))) {
    throw new AttributeError(`Validation of dictionary's keys failed. Expected keys: ${JSON.stringify(keys)} Provided keys: ${JSON.stringify(got)}`);
  }
  return v as Record<string, unknown>;
}

/** type:ip_pools, then canonical addresses. */
export const ipPools: Converter = (v) => {
  // Neutron turns null into no pools at all (a subnet nothing is allocated from).
  if (v === null) return [];
  if (!Array.isArray(v)) throw new AttributeError(`Invalid data format for IP pool: '${pyStr(v)}'`);
  return v.map((p): PoolText => {
    const d = dictWithKeys(p, ['start', 'end']);
    for (const k of ['start', 'end']) {
      const err = ipAddressError(d[k]);
      if (err) throw new AttributeError(err);
    }
    return { start: canonicalIp(d.start as string), end: canonicalIp(d.end as string) };
  });
};

/** type:nameservers: addresses, no duplicates; kept in the caller's order. */
export const nameservers: Converter = (v) => {
  if (v === null) return [];
  if (!Array.isArray(v)) throw new AttributeError(`Invalid data format for nameserver: '${pyStr(v)}'`);
  const seen: string[] = [];
  for (const host of v) {
    const err = ipAddressError(host);
    if (err) throw new AttributeError(`'${pyStr(host)}' is not a valid nameserver. ${err}`);
    if (seen.includes(host)) throw new AttributeError(`Duplicate nameserver '${host}'`);
    seen.push(host);
  }
  return seen.map(canonicalIp);
};

/** A route destination: a CIDR with no host bits (validate_route_cidr). */
function routeCidrError(text: unknown): string | null {
  const c = parseCidr(text);
  if (!c || !String(text).includes('/')) return `'${pyStr(text)}' is not a valid CIDR`;
  const hostBits = BigInt((c.ip.version === 4 ? 32 : 128) - c.prefixlen);
  if ((c.ip.value & ((1n << hostBits) - 1n)) !== 0n) return `'${pyStr(text)}' is not a valid CIDR`;
  const loopback = c.ip.version === 4 ? c.ip.value >> 24n === 127n : c.ip.value === 1n && c.prefixlen === 128;
  if (loopback) return `'${pyStr(text)}' is not a routable CIDR`;
  return null;
}

/** type:hostroutes: {destination, nexthop} dicts, no duplicates. */
export const hostRoutes: Converter = (v) => {
  if (v === null) return [];
  if (!Array.isArray(v)) throw new AttributeError(`Invalid data format for hostroute: '${pyStr(v)}'`);
  const out: HostRoute[] = [];
  for (const r of v) {
    const d = dictWithKeys(r, ['destination', 'nexthop']);
    const err = routeCidrError(d.destination) ?? ipAddressError(d.nexthop);
    if (err) throw new AttributeError(err);
    const route = { destination: cidr(d.destination) as string, nexthop: canonicalIp(d.nexthop as string) };
    if (out.some((o) => o.destination === route.destination && o.nexthop === route.nexthop)) {
      throw new AttributeError(`Duplicate hostroute '${JSON.stringify(d)}'`);
    }
    out.push(route);
  }
  return out;
};

/** Subnet service types are device owners or their prefixes ("compute:", "network:..."). */
export const serviceTypes: Converter = (v) => {
  if (!Array.isArray(v)) throw new AttributeError('Subnet service types must be a list.');
  for (const t of v) {
    if (typeof t !== 'string') throw new InvalidInput(`Subnet service type ${pyStr(t)} is not a string.`);
    if (!/^(network:|neutron:|compute:)/.test(t)) {
      throw new InvalidInput(`Subnet service type ${t} does not correspond to a valid device owner.`);
    }
  }
  return v;
};

const std = standardAttributes();

export const subnetDef: ResourceDef = {
  name: 'subnet',
  collection: 'subnets',
  table: 'subnets',
  taggable: true,
  attributes: {
    id: std.id,
    name: { post: true, put: true, default: '', convert: str(255) },
    tenant_id: std.tenant_id,
    network_id: { post: true, required: true, convert: uuid },
    ip_version: { post: true, required: true, convert: ipVersion },
    // Subnet pools are not implemented: only null is accepted (see SubnetService).
    subnetpool_id: { post: true, default: null, convert: nullable(uuid) },
    enable_dhcp: { post: true, put: true, default: true, convert: bool, codec: 'bool' },
    ipv6_ra_mode: { post: true, default: null, convert: nullable(oneOf(IPV6_MODES)) },
    ipv6_address_mode: { post: true, default: null, convert: nullable(oneOf(IPV6_MODES)) },
    // No default: absent means "the first host", null means "no gateway".
    gateway_ip: { post: true, put: true, convert: nullable(ipAddress) },
    cidr: { post: true, convert: cidr },
    allocation_pools: { post: true, put: true, convert: ipPools, codec: 'json', filter: false },
    host_routes: { post: true, put: true, default: [], convert: hostRoutes, codec: 'json', filter: false },
    dns_nameservers: { post: true, put: true, default: [], convert: nameservers, codec: 'json', filter: false },
    description: std.description,
    service_types: { post: true, put: true, default: [], convert: serviceTypes, codec: 'json', filter: false, adminSet: true },
    tags: std.tags,
    created_at: std.created_at,
    updated_at: std.updated_at,
    revision_number: std.revision_number,
    project_id: std.project_id,
  },
};
