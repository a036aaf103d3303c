// Floating IPs (neutron_lib/api/definitions/l3.py plus fip-port-details),
// attributes in the wire order of a real Neutron's POST /v2.0/floatingips
// answer. subnet_id is input only (is_visible False in Neutron).
import { nullable, standardAttributes, uuid, type ResourceDef } from './attributes.ts';
import { ipAddress } from './subnet.ts';

const std = standardAttributes();

export const floatingIpDef: ResourceDef = {
  name: 'floatingip',
  collection: 'floatingips',
  table: 'floatingips',
  taggable: true,
  attributes: {
    id: std.id,
    tenant_id: std.tenant_id,
    // create_floatingip:floating_ip_address is admin-only; null is the default, not a request.
    floating_ip_address: { post: true, default: null, convert: nullable(ipAddress), adminSet: true },
    floating_network_id: { post: true, required: true, convert: uuid },
    router_id: {},
    port_id: { post: true, put: true, default: null, convert: nullable(uuid) },
    fixed_ip_address: { post: true, put: true, default: null, convert: nullable(ipAddress) },
    status: {},
    project_id: std.project_id,
    description: std.description,
    port_details: { column: false, filter: false },
    tags: std.tags,
    created_at: std.created_at,
    updated_at: std.updated_at,
    revision_number: std.revision_number,
    subnet_id: { post: true, default: null, convert: nullable(uuid), column: false, filter: false, hidden: true },
  },
};
