// VPNaaS resources (neutron-vpnaas's vpnaas.py and vpn_endpoint_groups.py
// attribute maps), in the wire order of neutron-vpnaas's _make_*_dict, with
// project_id last as the API layer appends it. These are not standard-attr
// resources in neutron-vpnaas (no tags, timestamps or revision_number on the
// wire); the columns exist all the same, hidden, for If-Match and the change feed.
import {
  AttributeError, bool, int, nullable, oneOf, standardAttributes, str, uniqueList, uuid,
  type Attribute, type Converter, type ResourceDef,
} from './attributes.ts';
import { parseNet, pyStr } from '../services/ipam.ts';

export const AUTH_ALGORITHMS = ['sha1', 'sha256', 'sha384', 'sha512', 'aes-xcbc', 'aes-cmac'] as const;
export const ENCRYPTION_ALGORITHMS = [
  '3des', 'aes-128', 'aes-192', 'aes-256',
  ...['128', '192', '256'].flatMap((k) => ['ccm', 'gcm'].flatMap((m) => ['8', '12', '16'].map((icv) => `aes-${k}-${m}-${icv}`))),
] as const;
export const PFS_GROUPS = ['group2', 'group5', ...Array.from({ length: 18 }, (_, i) => `group${14 + i}`)];
export const LIFETIME_UNITS = ['seconds'] as const;
export const DPD_ACTIONS = ['hold', 'clear', 'restart', 'disabled', 'restart-by-peer'] as const;
export const ENDPOINT_TYPES = ['subnet', 'cidr', 'network', 'router', 'vlan'] as const;
export type EndpointType = typeof ENDPOINT_TYPES[number];

export interface Lifetime { units: 'seconds'; value: number }
export interface Dpd { action: typeof DPD_ACTIONS[number]; interval: number; timeout: number }
export const DEFAULT_LIFETIME: Lifetime = { units: 'seconds', value: 3600 };
export const DEFAULT_DPD: Dpd = { action: 'hold', interval: 30, timeout: 120 };

/**
 * neutron-lib's type:dict_or_empty with key specs: null is {}, each given key
 * converted, then unknown keys refused. What is missing is filled by the
 * service (defaults on create, the stored values on update).
 */
function dictOf(specs: Record<string, Converter>): Converter {
  return (v) => {
    if (v === null || v === undefined) return {};
    if (typeof v !== 'object' || Array.isArray(v)) throw new AttributeError(`'${pyStr(v)}' is not a dictionary`);
    const d = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const [k, convert] of Object.entries(specs)) if (k in d) out[k] = convert(d[k]);
    const unexpected = Object.keys(d).filter((k) => !(k in specs));
    if (unexpected.length) throw new AttributeError(`Unexpected keys supplied: ${unexpected.join(', ')}`);
    return out;
  };
}

/** Lifetimes below a minute only make IKE renegotiate forever. */
export const lifetime = dictOf({ units: oneOf(LIFETIME_UNITS), value: int(60) });
export const dpd = dictOf({ action: oneOf(DPD_ACTIONS), interval: int(0), timeout: int(0) });

/** type:subnet_list, as CIDR text. */
export const cidrList: Converter = (v) => {
  const list = v === null ? [] : Array.isArray(v) ? v : [v];
  return list.map((c) => {
    if (typeof c !== 'string' || !parseNet(c)) throw new AttributeError(`'${pyStr(c)}' is not a valid IP subnet`);
    return c;
  });
};

const std = standardAttributes();
/** Kept in the row for If-Match, the change feed and ordering; never shown (not standard-attr resources). */
const bookkeeping: Record<string, Attribute> = {
  created_at: { hidden: true },
  updated_at: { hidden: true },
  revision_number: { hidden: true },
};
const name: Attribute = { post: true, put: true, default: '', convert: str(255) };
const description: Attribute = { post: true, put: true, default: '', convert: str(255) };
const pfs: Attribute = { post: true, put: true, default: 'group5', convert: oneOf(PFS_GROUPS) };
const authAlgorithm: Attribute = { post: true, put: true, default: 'sha1', convert: oneOf(AUTH_ALGORITHMS) };
const encryptionAlgorithm: Attribute = { post: true, put: true, default: 'aes-128', convert: oneOf(ENCRYPTION_ALGORITHMS) };
const lifetimeAttr: Attribute = { post: true, put: true, default: {}, convert: lifetime, codec: 'json', filter: false };

export const ikePolicyDef: ResourceDef = {
  name: 'ikepolicy',
  collection: 'ikepolicies',
  path: 'vpn/ikepolicies',
  table: 'vpn_ikepolicies',
  taggable: false,
  attributes: {
    id: std.id,
    tenant_id: std.tenant_id,
    name,
    description,
    auth_algorithm: authAlgorithm,
    encryption_algorithm: encryptionAlgorithm,
    phase1_negotiation_mode: { post: true, put: true, default: 'main', convert: oneOf(['main', 'aggressive']) },
    lifetime: lifetimeAttr,
    ike_version: { post: true, put: true, default: 'v1', convert: oneOf(['v1', 'v2']) },
    pfs,
    ...bookkeeping,
    project_id: std.project_id,
  },
};

export const ipsecPolicyDef: ResourceDef = {
  name: 'ipsecpolicy',
  collection: 'ipsecpolicies',
  path: 'vpn/ipsecpolicies',
  table: 'vpn_ipsecpolicies',
  taggable: false,
  attributes: {
    id: std.id,
    tenant_id: std.tenant_id,
    name,
    description,
    transform_protocol: { post: true, put: true, default: 'esp', convert: oneOf(['esp', 'ah', 'ah-esp']) },
    auth_algorithm: authAlgorithm,
    encryption_algorithm: encryptionAlgorithm,
    encapsulation_mode: { post: true, put: true, default: 'tunnel', convert: oneOf(['tunnel', 'transport']) },
    lifetime: lifetimeAttr,
    pfs,
    ...bookkeeping,
    project_id: std.project_id,
  },
};

export const vpnServiceDef: ResourceDef = {
  name: 'vpnservice',
  collection: 'vpnservices',
  path: 'vpn/vpnservices',
  table: 'vpn_services',
  taggable: false,
  attributes: {
    id: std.id,
    tenant_id: std.tenant_id,
    name,
    description,
    subnet_id: { post: true, default: null, convert: nullable(uuid) },
    router_id: { post: true, required: true, convert: uuid },
    // vpn-flavors: no flavors exist here, so null or FlavorNotFound.
    flavor_id: { post: true, default: null, convert: nullable(uuid), column: false, filter: false },
    admin_state_up: { post: true, put: true, default: true, convert: bool, codec: 'bool' },
    // From the router's gateway port, as it is now (neutron-vpnaas keeps a copy in sync through callbacks).
    external_v4_ip: { column: false, filter: false },
    external_v6_ip: { column: false, filter: false },
    status: {},
    ...bookkeeping,
    project_id: std.project_id,
  },
};

export const endpointGroupDef: ResourceDef = {
  name: 'endpoint_group',
  collection: 'endpoint_groups',
  path: 'vpn/endpoint-groups',
  table: 'vpn_endpoint_groups',
  taggable: false,
  attributes: {
    id: std.id,
    tenant_id: std.tenant_id,
    name,
    description,
    type: { post: true, required: true, convert: oneOf(ENDPOINT_TYPES) },
    endpoints: { post: true, default: [], convert: uniqueList(str(255)), codec: 'json', filter: false },
    ...bookkeeping,
    project_id: std.project_id,
  },
};

export const ipsecSiteConnectionDef: ResourceDef = {
  name: 'ipsec_site_connection',
  collection: 'ipsec_site_connections',
  path: 'vpn/ipsec-site-connections',
  table: 'vpn_ipsec_site_connections',
  taggable: false,
  attributes: {
    id: std.id,
    tenant_id: std.tenant_id,
    name,
    description,
    peer_address: { post: true, put: true, required: true, convert: str(255) },
    peer_id: { post: true, put: true, required: true, convert: str(255) },
    local_id: { post: true, put: true, default: '', convert: str(255) },
    route_mode: {},
    // Non-negative only here: the minimum depends on the IP version (IPsecSiteConnectionMtuError, 68 for IPv4, 1280 for IPv6).
    mtu: { post: true, put: true, default: 1500, convert: int(0) },
    auth_mode: {},
    // Stored sealed (secret-box); shown decrypted to whoever may see the connection: its project and admins.
    psk: { post: true, put: true, required: true, convert: str(255), column: false, filter: false },
    initiator: { post: true, put: true, default: 'bi-directional', convert: oneOf(['bi-directional', 'response-only']) },
    dpd: { post: true, put: true, default: {}, convert: dpd, codec: 'json', filter: false },
    admin_state_up: { post: true, put: true, default: true, convert: bool, codec: 'bool' },
    status: {},
    vpnservice_id: { post: true, required: true, convert: uuid },
    ikepolicy_id: { post: true, required: true, convert: uuid },
    ipsecpolicy_id: { post: true, required: true, convert: uuid },
    peer_cidrs: { post: true, put: true, default: [], convert: cidrList, codec: 'json', filter: false },
    local_ep_group_id: { post: true, put: true, default: null, convert: nullable(uuid) },
    peer_ep_group_id: { post: true, put: true, default: null, convert: nullable(uuid) },
    ...bookkeeping,
    project_id: std.project_id,
  },
};
