// Routers (neutron_lib/api/definitions/l3.py plus the ext-gw-mode, extraroute,
// dvr, l3-ha, router-availability-zone and flavors extensions), attributes in
// the wire order of a real Neutron's POST /v2.0/routers answer, where
// project_id comes last. distributed and ha are only for admins, to set and to
// see; Neutron shows them to admins, we put them after flavor_id.
import {
  AttributeError, bool, listOf, nullable, standardAttributes, str, uuid, type Converter, type ResourceDef,
} from './attributes.ts';
import { fixedIps, type FixedIpInput } from './port.ts';
import { hostRoutes } from './subnet.ts';
import { pyStr } from '../services/ipam.ts';

export interface GatewayInfo {
  network_id: string;
  external_fixed_ips?: FixedIpInput[];
  enable_snat?: boolean;
}

/** The sub-attributes of external_gateway_info, in the order Neutron's validator (and its policy rule) lists them. */
export const GATEWAY_KEYS = ['network_id', 'external_fixed_ips', 'enable_snat'] as const;

/** Python's repr of a list of strings, for validator messages ("{'network_id'}"). */
const pySet = (keys: string[]) => `{${keys.map((k) => `'${k}'`).join(', ')}}`;

/**
 * type:dict_or_nodata with the ext-gw-mode key specs: null or {} means "no
 * gateway"; otherwise network_id is required, nothing else is allowed, and
 * each value is converted.
 */
export const gatewayInfo: Converter = (v) => {
  // Python truthiness: None, false, 0, '', [] and {} all mean "no gateway".
  if (!v || (Array.isArray(v) && v.length === 0)) return null;
  if (typeof v !== 'object' || Array.isArray(v)) {
    throw new AttributeError(`'${pyStr(v)}' is not a dictionary`);
  }
  const d = v as Record<string, unknown>;
  const keys = Object.keys(d);
  if (keys.length === 0) return null;
  if (!('network_id' in d)) {
    throw new AttributeError(`Validation of dictionary's keys failed. Expected keys: ${pySet(['network_id'])} Provided keys: ${pySet(keys)}`);
  }
  const unexpected = keys.filter((k) => !(GATEWAY_KEYS as readonly string[]).includes(k));
  if (unexpected.length) throw new AttributeError(`Unexpected keys supplied: ${unexpected.join(', ')}`);
  const out: GatewayInfo = { network_id: uuid(d.network_id) as string };
  if ('external_fixed_ips' in d) out.external_fixed_ips = fixedIps(d.external_fixed_ips) as FixedIpInput[];
  if ('enable_snat' in d) out.enable_snat = bool(d.enable_snat) as boolean;
  return out;
};

/** convert_to_boolean_if_not_none: null stays null (the configured default). */
const boolOrNull: Converter = nullable(bool);

const std = standardAttributes();

export const routerDef: ResourceDef = {
  name: 'router',
  collection: 'routers',
  table: 'routers',
  taggable: true,
  attributes: {
    id: std.id,
    name: { post: true, put: true, default: '', convert: str(255) },
    tenant_id: std.tenant_id,
    admin_state_up: { post: true, put: true, default: true, convert: bool, codec: 'bool' },
    status: {},
    // Computed from the gateway port; policy on its sub-attributes is the router service's.
    external_gateway_info: { post: true, put: true, default: null, convert: gatewayInfo, column: false, filter: false },
    description: std.description,
    availability_zones: { column: false, filter: false },
    availability_zone_hints: { post: true, default: [], convert: listOf(str(255)), codec: 'json', filter: false },
    // extraroute: settable on update only (allow_post False), null is no routes.
    routes: { put: true, convert: hostRoutes, codec: 'json', filter: false },
    // No flavors exist here: null, or a FlavorNotFound from the service.
    flavor_id: { post: true, convert: nullable(uuid), column: false, filter: false },
    // No default on purpose: Neutron's is ATTR_NOT_SPECIFIED, so any value a member sends is refused.
    distributed: { post: true, put: true, convert: boolOrNull, codec: 'bool', adminSet: true, adminSee: true },
    ha: { post: true, put: true, convert: boolOrNull, codec: 'bool', adminSet: true, adminSee: true },
    tags: std.tags,
    created_at: std.created_at,
    updated_at: std.updated_at,
    revision_number: std.revision_number,
    project_id: std.project_id,
  },
};
