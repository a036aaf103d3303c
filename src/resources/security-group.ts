import { AttributeError, bool, int, listOf, nullable, oneOf, standardAttributes, str, uuid, type Converter, type ResourceDef } from './attributes.ts';
import { parseCidr } from '../services/ipam.ts';

const std = standardAttributes();

export const securityGroupDef: ResourceDef = {
  name: 'security_group',
  collection: 'security_groups',
  path: 'security-groups',
  table: 'security_groups',
  taggable: true,
  attributes: {
    id: std.id,
    name: { post: true, put: true, default: '', convert: str(255) },
    stateful: { post: true, put: true, default: true, convert: bool, codec: 'bool' },
    tenant_id: std.tenant_id,
    description: std.description,
    shared: { codec: 'bool' },
    security_group_rules: { column: false, filter: false },
    tags: std.tags,
    created_at: std.created_at,
    updated_at: std.updated_at,
    revision_number: std.revision_number,
    project_id: std.project_id,
  },
};

/** IP protocol names Neutron accepts (neutron_lib.constants.IP_PROTOCOL_MAP). */
export const IP_PROTOCOLS: Record<string, number> = {
  ah: 51, dccp: 33, egp: 8, esp: 50, gre: 47, hopopt: 0, icmp: 1, igmp: 2, ipip: 4, 'ipv6-encap': 41,
  'ipv6-frag': 44, 'ipv6-icmp': 58, icmpv6: 58, 'ipv6-nonxt': 59, 'ipv6-opts': 60, 'ipv6-route': 43,
  ospf: 89, pgm: 113, rsvp: 46, sctp: 132, tcp: 6, udp: 17, udplite: 136, vrrp: 112,
};

/** Protocol by name, number or "any" (→ null); kept as given, lower-cased, as Neutron stores it. */
export const protocol: Converter = (v) => {
  if (v === null || v === undefined) return null;
  const s = String(v).toLowerCase();
  if (s === 'any') return null;
  if (s in IP_PROTOCOLS) return s;
  if (/^\d+$/.test(s) && Number(s) <= 255) return String(Number(s));
  throw new AttributeError(`Security group rule protocol ${String(v)} not supported. Only protocol values [${Object.keys(IP_PROTOCOLS).join(', ')}, None] and integer representations [0 to 255] are supported`);
};

export const cidr: Converter = (v) => {
  if (!parseCidr(v)) throw new AttributeError(`'${String(v)}' is not a valid IP subnet`);
  return v;
};

export const securityGroupRuleDef: ResourceDef = {
  name: 'security_group_rule',
  collection: 'security_group_rules',
  path: 'security-group-rules',
  table: 'security_group_rules',
  taggable: false,
  attributes: {
    id: std.id,
    tenant_id: std.tenant_id,
    security_group_id: { post: true, required: true, convert: uuid },
    ethertype: { post: true, default: 'IPv4', convert: oneOf(['IPv4', 'IPv6']) },
    direction: { post: true, required: true, convert: oneOf(['ingress', 'egress']) },
    protocol: { post: true, default: null, convert: protocol },
    port_range_min: { post: true, default: null, convert: nullable(int(0, 65535)) },
    port_range_max: { post: true, default: null, convert: nullable(int(0, 65535)) },
    remote_ip_prefix: { post: true, default: null, convert: nullable(cidr) },
    remote_address_group_id: { post: true, default: null, convert: nullable(uuid) },
    normalized_cidr: {},
    remote_group_id: { post: true, default: null, convert: nullable(uuid) },
    description: { post: true, put: true, default: '', convert: str(255) },
    created_at: std.created_at,
    updated_at: std.updated_at,
    revision_number: std.revision_number,
    project_id: std.project_id,
  },
};

export const addressGroupDef: ResourceDef = {
  name: 'address_group',
  collection: 'address_groups',
  path: 'address-groups',
  table: 'address_groups',
  taggable: false,
  attributes: {
    id: std.id,
    name: { post: true, put: true, default: '', convert: str(255) },
    description: std.description,
    tenant_id: std.tenant_id,
    project_id: std.project_id,
    addresses: { post: true, default: [], convert: listOf(cidr), column: false, filter: false },
    created_at: std.created_at,
    updated_at: std.updated_at,
    revision_number: std.revision_number,
  },
};
