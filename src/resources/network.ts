import { bool, int, listOf, nullable, oneOf, standardAttributes, str, type ResourceDef } from './attributes.ts';

export const NETWORK_TYPES = ['flat', 'vlan', 'vxlan', 'local'] as const;
export type NetworkType = (typeof NETWORK_TYPES)[number];

const std = standardAttributes();

export const networkDef: ResourceDef = {
  name: 'network',
  collection: 'networks',
  table: 'networks',
  taggable: true,
  attributes: {
    id: std.id,
    name: { post: true, put: true, default: '', convert: str(255) },
    tenant_id: std.tenant_id,
    admin_state_up: { post: true, put: true, default: true, convert: bool, codec: 'bool' },
    mtu: { post: true, put: true, convert: int(68, 65535) },
    status: {},
    subnets: { column: false, filter: false },
    shared: { post: true, put: true, default: false, convert: bool, codec: 'bool', adminSet: true },
    project_id: std.project_id,
    port_security_enabled: { post: true, put: true, default: true, convert: bool, codec: 'bool' },
    'router:external': { post: true, put: true, default: false, convert: bool, codec: 'bool', column: 'router_external', adminSet: true },
    'provider:network_type': { post: true, convert: oneOf(NETWORK_TYPES), column: 'network_type', adminSet: true, adminSee: true },
    'provider:physical_network': { post: true, convert: nullable(str(64)), column: 'physical_network', adminSet: true, adminSee: true },
    'provider:segmentation_id': { post: true, convert: nullable(int(0, 16777215)), column: 'segmentation_id', adminSet: true, adminSee: true },
    is_default: { post: true, put: true, default: false, convert: bool, codec: 'bool', adminSet: true },
    availability_zone_hints: { post: true, default: [], convert: listOf(str(255)), codec: 'json', filter: false },
    availability_zones: { column: false, filter: false },
    ipv4_address_scope: { column: false, filter: false },
    ipv6_address_scope: { column: false, filter: false },
    description: std.description,
    tags: std.tags,
    created_at: std.created_at,
    updated_at: std.updated_at,
    revision_number: std.revision_number,
  },
};
