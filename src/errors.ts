// Typed errors, mapped once to HTTP by the API layer (src/api/errors.ts).
// `type` is what Neutron puts in NeutronError.type: the exception class name.
export abstract class NeutronError extends Error {
  abstract readonly status: number;
  readonly detail: string;
  constructor(message: string, detail = '') {
    super(message);
    this.detail = detail;
  }
  get type(): string {
    return this.constructor.name;
  }
}

// ---- categories (status codes) ----
export class BadRequest extends NeutronError { readonly status = 400; }
export class NotAuthorized extends NeutronError { readonly status = 403; }
export class NotFound extends NeutronError { readonly status = 404; }
export class Conflict extends NeutronError { readonly status = 409; }
export class PreconditionFailed extends NeutronError { readonly status = 412; }

// ---- generic ----
/** What webob raises for unparseable or malformed bodies and invalid attribute values. */
export class HTTPBadRequest extends BadRequest {}
export class HTTPNotFound extends NotFound {
  constructor() { super('The resource could not be found.'); }
}
export class InvalidInput extends BadRequest {
  constructor(reason: string) { super(`Invalid input for operation: ${reason}.`); }
}
/** Neutron's API layer refusing a port or subnet on another project's unshared network. */
export class HTTPForbidden extends NotAuthorized {}
export class PolicyNotAuthorized extends NotAuthorized {
  constructor(rule: string) { super(`${rule} is disallowed by policy`); }
}
export class RevisionNumberConstraintFailed extends PreconditionFailed {
  constructor(expected: number, current: number) {
    super(`Constrained to ${expected}, but current revision is ${current}`);
  }
}
export class OverQuota extends Conflict {
  constructor(resource: string) {
    super(`Quota exceeded for resources: ['${resource}'].`);
  }
}
export class TagNotFound extends NotFound {
  constructor(resourceType: string, id: string, tag: string) {
    super(`Tag ${tag} could not be found for ${resourceType} ${id}.`);
  }
}

const pascal = (name: string) => name.split(/[_-]/).map((w) => w[0].toUpperCase() + w.slice(1)).join('');

/** Where Neutron's wording is not "<Resource> <id> could not be found." */
const NOT_FOUND_WORDING: Record<string, { type: string; message: (id: string) => string }> = {
  router: { type: 'RouterNotFound', message: (id) => `Router ${id} could not be found` },
  floatingip: { type: 'FloatingIPNotFound', message: (id) => `Floating IP ${id} could not be found` },
  // neutron_lib/exceptions/vpn.py
  ikepolicy: { type: 'IKEPolicyNotFound', message: (id) => `IKEPolicy ${id} could not be found` },
  ipsecpolicy: { type: 'IPsecPolicyNotFound', message: (id) => `IPsecPolicy ${id} could not be found` },
  vpnservice: { type: 'VPNServiceNotFound', message: (id) => `VPNService ${id} could not be found` },
  ipsec_site_connection: { type: 'IPsecSiteConnectionNotFound', message: (id) => `ipsec_site_connection ${id} not found` },
  endpoint_group: { type: 'VPNEndpointGroupNotFound', message: (id) => `Endpoint group ${id} could not be found` },
};

/** `<Resource>NotFound` with Neutron's message, e.g. NetworkNotFound "Network X could not be found." */
export class ResourceNotFound extends NotFound {
  readonly resource: string;
  constructor(resource: string, id: string) {
    const label = resource.split(/[_-]/).join(' ');
    super(NOT_FOUND_WORDING[resource]?.message(id) ?? `${label[0].toUpperCase()}${label.slice(1)} ${id} could not be found.`);
    this.resource = resource;
  }
  override get type(): string {
    return NOT_FOUND_WORDING[this.resource]?.type ?? `${pascal(this.resource)}NotFound`;
  }
}

// ---- networks / segments ----
export class NetworkInUse extends Conflict {
  constructor(id: string, portIds: string[]) {
    super(`Unable to complete operation on network ${id}. There are one or more ports still in use on the network, id for these ports is: ${portIds.join(',')}.`);
  }
}
export class VlanIdInUse extends Conflict {
  constructor(vlan: number, physnet: string) {
    super(`Unable to create the network. The VLAN ${vlan} on physical network ${physnet} is in use.`);
  }
}
export class TunnelIdInUse extends Conflict {
  constructor(id: number) {
    super(`Unable to create the network. The tunnel ID ${id} is in use.`);
  }
}
export class FlatNetworkInUse extends Conflict {
  constructor(physnet: string) {
    super(`Unable to create the flat network. Physical network ${physnet} is in use.`);
  }
}
export class NoNetworkAvailable extends NeutronError {
  readonly status = 503;
  constructor() { super('Unable to create the network. No tenant network is available for allocation.'); }
}

// ---- subnets / IPAM ----
export class SubnetInUse extends Conflict {
  constructor(id: string, reason = 'One or more ports have an IP allocation from this subnet.') {
    super(`Unable to complete operation on subnet ${id}: ${reason}`);
  }
}
// Neutron raises InvalidInput here and, deliberately, does not name the other
// subnet (it may belong to another project on a shared network); the class
// name is ours, the wire type and message are Neutron's.
export class OverlappingSubnet extends BadRequest {
  constructor(cidr: string, networkId: string) {
    super(`Invalid input for operation: Requested subnet with cidr: ${cidr} for network: ${networkId} overlaps with another subnet.`);
  }
  override get type(): string {
    return 'InvalidInput';
  }
}
export class IpAddressAlreadyAllocated extends Conflict {
  constructor(ip: string, subnetId: string) {
    super(`IP address ${ip} already allocated in subnet ${subnetId}`);
  }
}
export class IpAddressGenerationFailure extends Conflict {
  constructor(networkId: string) {
    super(`No more IP addresses available on network ${networkId}.`);
  }
}
export class InvalidIpForSubnet extends BadRequest {
  constructor(ip: string) {
    super(`IP address ${ip} is not a valid IP for the specified subnet.`);
  }
}
export class InvalidIpForNetwork extends BadRequest {
  constructor(ip: string) {
    super(`IP address ${ip} is not a valid IP for any of the subnets on the specified network.`);
  }
}
export class MacAddressInUse extends Conflict {
  constructor(networkId: string, mac: string) {
    super(`Unable to complete operation for network ${networkId}. The mac address ${mac} is in use.`);
  }
}
export class InvalidAllocationPool extends BadRequest {
  constructor(pool: string) { super(`The allocation pool ${pool} is not valid.`); }
}
export class OutOfBoundsAllocationPool extends BadRequest {
  constructor(pool: string, cidr: string) { super(`The allocation pool ${pool} spans beyond the subnet cidr ${cidr}.`); }
}
export class OverlappingAllocationPools extends Conflict {
  constructor(pool1: string, pool2: string, cidr: string) {
    super(`Found overlapping allocation pools: ${pool1} ${pool2} for subnet ${cidr}.`);
  }
}
export class GatewayConflictWithAllocationPools extends Conflict {
  constructor(ip: string, pool: string) { super(`Gateway ip ${ip} conflicts with allocation pool ${pool}.`); }
}
export class GatewayIpInUse extends Conflict {
  constructor(ip: string, portId: string) {
    super(`Current gateway ip ${ip} already in use by port ${portId}. Unable to update.`);
  }
}
export class DNSNameServersExhausted extends BadRequest {
  constructor(subnet: string, quota: number) {
    super(`Unable to complete operation for ${subnet}. The number of DNS nameservers exceeds the limit ${quota}.`);
  }
}
export class HostRoutesExhausted extends BadRequest {
  constructor(subnet: string, quota: number) {
    super(`Unable to complete operation for ${subnet}. The number of host routes exceeds the limit ${quota}.`);
  }
}
export class InvalidSubnetServiceType extends BadRequest {
  constructor(serviceType: string) {
    super(`Subnet service type ${serviceType} does not correspond to a valid device owner.`);
  }
}
export class NetworkMTUSubnetConflict extends Conflict {
  constructor(networkId: string, mtu: number) {
    super(`MTU of ${networkId} is not valid, subnet requires a minimum of ${mtu}`);
  }
}
export class AllocationOnAutoAddressSubnet extends BadRequest {
  constructor(ip: string, subnetId: string) {
    super(`IPv6 address ${ip} cannot be directly assigned to a port on subnet ${subnetId} as the subnet is configured for automatic addresses`);
  }
}
export class IpAddressGenerationFailureNoMatchingSubnet extends Conflict {
  constructor(networkId: string, serviceType: string) {
    super(`No valid service subnet for the given device owner, network ${networkId}, service type ${serviceType}.`);
  }
}

// ---- ports ----
export class MacAddressGenerationFailure extends NeutronError {
  readonly status = 503;
  constructor(networkId: string) { super(`Unable to generate unique mac on network ${networkId}.`); }
}
export class PortBound extends Conflict {
  constructor(portId: string, vifType: string, oldMac: string, newMac: string) {
    super(`Unable to complete operation on port ${portId}, port is already bound, port type: ${vifType}, old_mac ${oldMac}, new_mac ${newMac}.`);
  }
}
export class UnsupportedPortDeviceOwner extends Conflict {
  constructor(op: string, deviceOwner: string, portId: string) {
    super(`Operation ${op} is not supported for device_owner ${deviceOwner} on port ${portId}.`);
  }
}
export class AddressPairAndPortSecurityRequired extends Conflict {
  constructor() { super('Port Security must be enabled in order to have allowed address pairs on a port.'); }
}
export class AllowedAddressPairsMissingIP extends BadRequest {
  constructor() { super('AllowedAddressPair must contain ip_address'); }
}
export class DuplicateAddressPairInRequest extends BadRequest {
  constructor(mac: string | null, ip: string) {
    super(`Request contains duplicate address pair: mac_address ${mac ?? 'None'} ip_address ${ip}.`);
  }
}
export class AllowedAddressPairExhausted extends BadRequest {
  constructor(quota: number) { super(`The number of allowed address pair exceeds the maximum ${quota}.`); }
}
export class PortSecurityAndIPRequiredForSecurityGroups extends BadRequest {
  constructor() {
    super('Port security must be enabled and port must have an IP address in order to use security groups.');
  }
}
export class PortSecurityPortHasSecurityGroup extends Conflict {
  constructor() {
    super('Port has security group associated. Cannot disable port security or IP address until security group is removed.');
  }
}

// ---- security groups ----
/** Neutron's own message ("does not exist"), not the generic "could not be found". */
export class SecurityGroupNotFound extends NotFound {
  constructor(id: string) { super(`Security group ${id} does not exist`); }
}
export class SecurityGroupRuleExists extends Conflict {
  constructor(ruleId: string) { super(`Security group rule already exists. Rule id is ${ruleId}.`); }
}
export class SecurityGroupInUse extends Conflict {
  constructor(id: string) { super(`Security Group ${id} in use.`); }
}
export class SecurityGroupCannotRemoveDefault extends Conflict {
  constructor() { super('Insufficient rights for removing default security group.'); }
}
export class SecurityGroupCannotUpdateDefault extends Conflict {
  constructor() { super('Updating default security group not allowed.'); }
}
export class SecurityGroupRemoteGroupAndRemoteIpPrefix extends BadRequest {
  constructor() { super('Only remote_ip_prefix or remote_group_id may be provided.'); }
}
export class SecurityGroupRemoteAddressGroupAndRemoteIpPrefix extends BadRequest {
  constructor() { super('Only remote_ip_prefix, remote_group_id or remote_address_group_id may be provided.'); }
}
export class SecurityGroupRuleParameterConflict extends BadRequest {
  constructor(ethertype: string, cidr: string) { super(`Conflicting value ethertype ${ethertype} for CIDR ${cidr}`); }
}
export class SecurityGroupInvalidPortRange extends BadRequest {
  constructor() { super('For TCP/UDP protocols, port_range_min must be <= port_range_max'); }
}
export class SecurityGroupInvalidPortValue extends BadRequest {
  constructor(port: number) { super(`Invalid value for port ${port}`); }
}
export class SecurityGroupProtocolRequiredWithPorts extends BadRequest {
  constructor() { super('Must also specify protocol if port range is given.'); }
}
export class SecurityGroupMissingIcmpType extends BadRequest {
  constructor(code: number) { super(`ICMP code (port-range-max) ${code} is provided but ICMP type (port-range-min) is missing.`); }
}
export class SecurityGroupInvalidIcmpValue extends BadRequest {
  constructor(field: string, attr: string, value: number) {
    super(`Invalid value for ICMP ${field} (${attr}) ${value}. It must be 0 to 255.`);
  }
}
export class SecurityGroupInvalidProtocolForPortRange extends BadRequest {
  constructor(protocol: string) {
    super(`Invalid protocol ${protocol} for port range, only supported for TCP, UDP, UDPLITE, SCTP and DCCP.`);
  }
}

// ---- routers / floating IPs (neutron_lib/exceptions/l3.py, extraroute.py) ----
/** Neutron's generic "Bad <resource> request: <msg>." (n_exc.BadRequest), e.g. for routers and floating IPs. */
export function badRequest(resource: string, msg: string): BadRequest {
  return new BadRequest(`Bad ${resource} request: ${msg}.`);
}
// Neutron's messages for these two have no final period.
export class RouterNotFound extends ResourceNotFound {
  constructor(id: string) { super('router', id); }
}
export class FloatingIPNotFound extends ResourceNotFound {
  constructor(id: string) { super('floatingip', id); }
}
export class RouterInUse extends Conflict {
  constructor(id: string, reason = 'still has ports') { super(`Router ${id} ${reason}`); }
}
export class RouterInterfaceNotFound extends NotFound {
  constructor(routerId: string, portId: string) { super(`Router ${routerId} does not have an interface with id ${portId}`); }
}
export class RouterInterfaceNotFoundForSubnet extends NotFound {
  constructor(routerId: string, subnetId: string) { super(`Router ${routerId} has no interface on subnet ${subnetId}`); }
}
export class RouterInterfaceInUseByFloatingIP extends Conflict {
  constructor(routerId: string, subnetId: string) {
    super(`Router interface for subnet ${subnetId} on router ${routerId} cannot be deleted, as it is required by one or more floating IPs.`);
  }
}
export class RouterInterfaceInUseByRoute extends Conflict {
  constructor(routerId: string, subnetId: string) {
    super(`Router interface for subnet ${subnetId} on router ${routerId} cannot be deleted, as it is required by one or more routes.`);
  }
}
export class RouterExternalGatewayInUseByFloatingIp extends Conflict {
  constructor(routerId: string, networkId: string) {
    super(`Gateway cannot be updated for router ${routerId}, since a gateway to external network ${networkId} is required by one or more floating IPs.`);
  }
}
export class ExternalGatewayForFloatingIPNotFound extends NotFound {
  constructor(externalNetworkId: string, subnetId: string, portId: string) {
    // Two spaces after "subnet_id.", as in Neutron.
    super(`External network ${externalNetworkId} is not reachable from subnet ${subnetId}.  Therefore, cannot associate Port ${portId} with a Floating IP.`);
  }
}
export class FloatingIPPortAlreadyAssociated extends Conflict {
  constructor(fipAddress: string, fipId: string, portId: string, fixedIp: string, networkId: string) {
    super(`Cannot associate floating IP ${fipAddress} (${fipId}) with port ${portId} using fixed IP ${fixedIp}, as that fixed IP already has a floating IP on external network ${networkId}.`);
  }
}
export class FipAssociated extends Conflict {
  constructor(portId: string) {
    super(`Unable to complete the operation on port ${portId} because the port still has an associated floating IP.`);
  }
}
/** extraroute's InvalidRoutes (an InvalidInput with its own message). */
export class InvalidRoutes extends BadRequest {
  constructor(routes: string, reason: string) { super(`Invalid format for routes: ${routes}, ${reason}`); }
}
export class PortInUse extends Conflict {
  constructor(networkId: string, portId: string, deviceId: string) {
    super(`Unable to complete operation on port ${portId} for network ${networkId}. Port already has an attached device ${deviceId}.`);
  }
}
/** A router or floating IP port deleted through the port API (Neutron's prevent_l3_port_deletion). */
export class ServicePortInUse extends Conflict {
  constructor(portId: string, reason: string) {
    super(`Port ${portId} cannot be deleted directly via the port API: ${reason}.`);
  }
}
export class SubnetMismatchForPort extends BadRequest {
  constructor(portId: string, subnetId: string) {
    super(`Subnet on port ${portId} does not match the requested subnet ${subnetId}.`);
  }
}
export class ExternalIpAddressExhausted extends BadRequest {
  constructor(networkId: string) { super(`Unable to find any IP address on external network ${networkId}.`); }
}

// ---- VPNaaS (neutron_lib/exceptions/vpn.py; Neutron's messages have no final period) ----
export class IPsecSiteConnectionDpdIntervalValueError extends BadRequest {
  constructor(attr: string) { super(`ipsec_site_connection ${attr} is equal to or less than dpd_interval`); }
}
export class IPsecSiteConnectionMtuError extends BadRequest {
  constructor(mtu: number, version: number) { super(`ipsec_site_connection MTU ${mtu} is too small for ipv${version}`); }
}
export class IPsecSiteConnectionPeerCidrError extends BadRequest {
  constructor(cidr: string) { super(`ipsec_site_connection peer cidr ${cidr} is invalid CIDR`); }
}
export class IKEPolicyInUse extends Conflict {
  constructor(id: string) { super(`IKEPolicy ${id} is in use by existing IPsecSiteConnection and can't be updated or deleted`); }
}
export class IPsecPolicyInUse extends Conflict {
  constructor(id: string) { super(`IPsecPolicy ${id} is in use by existing IPsecSiteConnection and can't be updated or deleted`); }
}
export class VPNServiceInUse extends Conflict {
  constructor(id: string) { super(`VPNService ${id} is still in use`); }
}
export class VPNStateInvalidToUpdate extends BadRequest {
  constructor(id: string, state: string) { super(`Invalid state ${state} of vpnaas resource ${id} for updating`); }
}
export class SubnetIsNotConnectedToRouter extends BadRequest {
  constructor(subnetId: string, routerId: string) { super(`Subnet ${subnetId} is not connected to Router ${routerId}`); }
}
export class RouterIsNotExternal extends BadRequest {
  constructor(routerId: string) { super(`Router ${routerId} has no external network gateway set`); }
}
export class VPNPeerAddressNotResolved extends BadRequest {
  constructor(address: string) { super(`Peer address ${address} cannot be resolved`); }
}
export class ExternalNetworkHasNoSubnet extends BadRequest {
  constructor(routerId: string, ipVersion: 4 | 6) { super(`Router's ${routerId} external network has no IPv${ipVersion} subnet`); }
}
export class InvalidEndpointInEndpointGroup extends BadRequest {
  constructor(endpoint: string, groupType: string, why: string) {
    super(`Endpoint '${endpoint}' is invalid for group type '${groupType}': ${why}`);
  }
}
export class MissingEndpointForEndpointGroup extends BadRequest {
  constructor(group: string) { super(`No endpoints specified for endpoint group '${group}'`); }
}
export class NonExistingSubnetInEndpointGroup extends BadRequest {
  constructor(subnet: string) { super(`Subnet ${subnet} in endpoint group does not exist`); }
}
export class MixedIPVersionsForIPSecEndpoints extends BadRequest {
  constructor(group: string) {
    super(`Endpoints in group ${group} do not have the same IP version, as required for IPSec site-to-site connection`);
  }
}
export class MixedIPVersionsForPeerCidrs extends BadRequest {
  constructor() { super('Peer CIDRs do not have the same IP version, as required for IPSec site-to-site connection'); }
}
export class MixedIPVersionsForIPSecConnection extends BadRequest {
  constructor() { super('IP versions are not compatible between peer and local endpoints'); }
}
/** which: 'local', 'peer' or 'local and peer' (suffix 's' for both), as vpn_validator words it. */
export class InvalidEndpointGroup extends BadRequest {
  constructor(which: string[]) {
    super(`Endpoint group${which.length > 1 ? 's' : ''} ${which.join(' and ')} cannot be specified, when VPN Service has subnet specified`);
  }
}
export class WrongEndpointGroupType extends BadRequest {
  constructor(which: string, groupType: string, expected: string) {
    super(`Endpoint group ${which} type is '${groupType}' and should be '${expected}'`);
  }
}
export class PeerCidrsInvalid extends BadRequest {
  constructor() { super('Peer CIDRs cannot be specified, when using endpoint groups'); }
}
export class MissingPeerCidrs extends BadRequest {
  constructor() { super('Missing peer CIDRs for IPsec site-to-site connection'); }
}
export class MissingRequiredEndpointGroup extends BadRequest {
  constructor(which: string[]) {
    super(`Missing endpoint group${which.length > 1 ? 's' : ''} ${which.join(' and ')} for IPSec site-to-site connection`);
  }
}
/** A BadRequest in neutron-vpnaas, not an InUse. */
export class EndpointGroupInUse extends BadRequest {
  constructor(id: string) { super(`Endpoint group ${id} is in use and cannot be deleted`); }
}
/** Nucleon's own check (neutron-vpnaas lets it through and the tunnel never carries traffic). */
export class PeerCidrOverlapsLocalSubnet extends BadRequest {
  constructor(peer: string, local: string) { super(`Peer CIDR ${peer} overlaps with local subnet ${local}`); }
}

// ---- L3 resources a VPN service depends on (neutron-vpnaas) ----
export class RouterInUseByVPNService extends Conflict {
  constructor(routerId: string, vpnserviceId: string) { super(`Router ${routerId} is used by VPNService ${vpnserviceId}`); }
}
export class SubnetInUseByVPNService extends Conflict {
  constructor(subnetId: string, vpnserviceId: string) { super(`Subnet ${subnetId} is used by VPNService ${vpnserviceId}`); }
}
