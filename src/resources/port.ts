// Ports (neutron_lib/api/definitions/port.py plus the port-security,
// allowed-address-pairs, extra_dhcp_opt, security-group and binding
// extensions), attributes in the wire order of a real Neutron's POST
// /v2.0/ports answer. The four binding attributes only admins see come right
// after binding:vnic_type, as Neutron lists them for an admin.
import { HTTPBadRequest, InvalidInput, AllowedAddressPairExhausted, AllowedAddressPairsMissingIP, DuplicateAddressPairInRequest } from '../errors.ts';
import { AttributeError, bool, dict, mac, nullable, oneOf, standardAttributes, str, uuid, type Converter, type ResourceDef } from './attributes.ts';
import { canonicalIp, ipAddressError, parseCidr, pyStr } from '../services/ipam.ts';

export const VNIC_TYPES = [
  'normal', 'direct', 'macvtap', 'baremetal', 'direct-physical', 'virtio-forwarder', 'smart-nic', 'vdpa',
  'accelerator-direct', 'accelerator-direct-physical', 'remote-managed',
] as const;

/** neutron.conf max_allowed_address_pair. */
export const MAX_ALLOWED_ADDRESS_PAIRS = 10;

export interface FixedIpInput { subnet_id?: string; ip_address?: string }
export interface AddressPair { ip_address: string; mac_address?: string }
export interface DhcpOpt { opt_name: string; opt_value: string | null; ip_version: number }

/** type:fixed_ips: dicts with an optional subnet_id and ip_address, no address twice. */
export const fixedIps: Converter = (v) => {
  if (!Array.isArray(v)) throw new AttributeError(`Invalid data format for fixed IP: '${pyStr(v)}'`);
  const seen = new Set<string>();
  return v.map((f): FixedIpInput => {
    if (f === null || typeof f !== 'object' || Array.isArray(f)) throw new AttributeError(`Invalid data format for fixed IP: '${pyStr(f)}'`);
    const out: FixedIpInput = {};
    if ('ip_address' in f) {
      const err = ipAddressError(f.ip_address);
      if (err) throw new AttributeError(err);
      const ip = canonicalIp(f.ip_address);
      if (seen.has(ip)) throw new AttributeError(`Duplicate IP address '${f.ip_address}'`);
      seen.add(ip);
      out.ip_address = ip;
    }
    if ('subnet_id' in f) out.subnet_id = uuid(f.subnet_id) as string;
    return out;
  });
};

function isMulticast(text: string): boolean {
  const c = parseCidr(text)!;
  return c.ip.version === 4 ? c.ip.value >> 28n === 0xen : c.ip.value >> 120n === 0xffn;
}

/**
 * The allowed-address-pairs validator: its own exceptions for a missing
 * address, duplicates and too many pairs, a plain 400 for bad values.
 */
export const allowedAddressPairs: Converter = (v) => {
  if (v === null) return [];
  if (!Array.isArray(v)) throw new HTTPBadRequest('Allowed address pairs must be a list.');
  if (v.length > MAX_ALLOWED_ADDRESS_PAIRS) throw new AllowedAddressPairExhausted(MAX_ALLOWED_ADDRESS_PAIRS);
  const seen = new Set<string>();
  return v.map((pair): AddressPair => {
    dict(pair);
    const p = pair as Record<string, unknown>;
    if ('mac_address' in p) mac(p.mac_address);
    if (!('ip_address' in p)) throw new AllowedAddressPairsMissingIP();
    const key = JSON.stringify([p.mac_address ?? null, p.ip_address]);
    if (seen.has(key)) throw new DuplicateAddressPairInRequest((p.mac_address as string | undefined) ?? null, pyStr(p.ip_address));
    seen.add(key);
    const extra = Object.keys(p).filter((k) => k !== 'mac_address' && k !== 'ip_address');
    if (extra.length) throw new HTTPBadRequest(`Unrecognized attribute(s) '${extra.join(', ')}'`);
    const ip = p.ip_address;
    if (typeof ip === 'string' && ip.includes('/')) {
      const c = parseCidr(ip);
      if (!c) throw new HTTPBadRequest(`'${ip}' is not a valid IP subnet`);
    } else {
      const err = ipAddressError(ip);
      if (err) throw new HTTPBadRequest(err);
    }
    if (isMulticast(ip as string)) throw new HTTPBadRequest(`'${ip}' is a multicast IP address`);
    // Kept as written (Neutron stores the caller's text); the MAC is lower-cased.
    const out: AddressPair = { ip_address: ip as string };
    if (p.mac_address !== undefined) out.mac_address = mac(p.mac_address) as string;
    return out;
  });
};

const BLANK_OK_OPTS = ['router', 'classless-static-route'];

/** list_of_any_key_specs_or_none with Neutron's two extra_dhcp_opt key specs. */
export const extraDhcpOpts: Converter = (v) => {
  if (v === null) return [];
  if (!Array.isArray(v)) throw new InvalidInput(`'${pyStr(v)}' is not a list`);
  const seen = new Set<string>();
  return v.map((o): DhcpOpt & { opt_value: string | null } => {
    const bad = () => new InvalidInput(`No valid key specs matched for: ${pyStr(o)}`);
    if (o === null || typeof o !== 'object' || Array.isArray(o)) throw bad();
    const d = o as Record<string, unknown>;
    if (Object.keys(d).some((k) => !['opt_name', 'opt_value', 'ip_version'].includes(k))) throw bad();
    const name = d.opt_name;
    const value = d.opt_value;
    if (typeof name !== 'string' || !('opt_value' in d)) throw bad();
    const oneLine = (s: string) => !/[\r\n]/.test(s);
    if (BLANK_OK_OPTS.includes(name)) {
      if (value !== null && (typeof value !== 'string' || value.length > 255)) throw bad();
    } else {
      if (name === '' || name.length > 64 || !oneLine(name)) throw bad();
      if (value !== null && (typeof value !== 'string' || value === '' || value.length > 255 || !oneLine(value))) throw bad();
    }
    let version = 4;
    if ('ip_version' in d && d.ip_version !== null) {
      const n = Number(d.ip_version);
      if (n !== 4 && n !== 6) throw bad();
      version = n;
    }
    const key = JSON.stringify([name, version]);
    if (seen.has(key)) throw new InvalidInput(`Duplicate items in the list: '${pyStr(o)}'`);
    seen.add(key);
    return { opt_name: name, opt_value: value as string | null, ip_version: version };
  });
};

/** type:uuid_list (null is no groups). */
export const securityGroupIds: Converter = (v) => {
  if (v === null) return [];
  if (!Array.isArray(v)) throw new AttributeError(`'${pyStr(v)}' is not a list`);
  const ids = v.map((x) => uuid(x) as string);
  if (new Set(ids).size !== ids.length) throw new AttributeError(`Duplicate items in the list: '${ids.join(', ')}'`);
  return ids;
};

const std = standardAttributes();

export const portDef: ResourceDef = {
  name: 'port',
  collection: 'ports',
  table: 'ports',
  taggable: true,
  attributes: {
    id: std.id,
    name: { post: true, put: true, default: '', convert: str(255) },
    network_id: { post: true, required: true, convert: uuid },
    tenant_id: std.tenant_id,
    // Generated when absent; who may choose one depends on the network (PortService).
    mac_address: { post: true, put: true, convert: mac },
    admin_state_up: { post: true, put: true, default: true, convert: bool, codec: 'bool' },
    status: {},
    device_id: { post: true, put: true, default: '', convert: str(255) },
    device_owner: { post: true, put: true, default: '', convert: str(255) },
    fixed_ips: { post: true, put: true, convert: fixedIps, column: false },
    project_id: std.project_id,
    // Defaults to the network's value.
    port_security_enabled: { post: true, put: true, convert: bool, codec: 'bool' },
    security_groups: { post: true, put: true, convert: securityGroupIds, column: false, filter: false },
    'binding:vnic_type': { post: true, put: true, default: 'normal', convert: oneOf(VNIC_TYPES), column: 'binding_vnic_type' },
    'binding:host_id': { post: true, put: true, default: '', convert: str(255), column: 'binding_host_id', adminSet: true, adminSee: true },
    'binding:profile': { post: true, put: true, default: {}, convert: nullable(dict), codec: 'json', column: 'binding_profile', adminSet: true, adminSee: true, filter: false },
    'binding:vif_details': { codec: 'json', column: 'binding_vif_details', adminSee: true, filter: false },
    'binding:vif_type': { column: 'binding_vif_type', adminSee: true },
    allowed_address_pairs: { post: true, put: true, default: [], convert: allowedAddressPairs, codec: 'json', filter: false },
    extra_dhcp_opts: { post: true, put: true, default: [], convert: extraDhcpOpts, codec: 'json', filter: false },
    description: std.description,
    tags: std.tags,
    created_at: std.created_at,
    updated_at: std.updated_at,
    revision_number: std.revision_number,
  },
};
