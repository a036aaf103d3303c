// neutron-vpnaas's validation (db/vpn/vpn_validator.py) as pure functions over
// plain values, so every rule is testable without a store; the services load
// the rows and call these in Neutron's order.
import {
  IPsecSiteConnectionDpdIntervalValueError, IPsecSiteConnectionMtuError, InvalidEndpointGroup, InvalidEndpointInEndpointGroup,
  MissingEndpointForEndpointGroup, MissingPeerCidrs, MissingRequiredEndpointGroup, MixedIPVersionsForIPSecConnection,
  MixedIPVersionsForIPSecEndpoints, MixedIPVersionsForPeerCidrs, PeerCidrOverlapsLocalSubnet, PeerCidrsInvalid, WrongEndpointGroupType,
} from '../../errors.ts';
import { DEFAULT_DPD, DEFAULT_LIFETIME, type Dpd, type EndpointType, type Lifetime } from '../../resources/vpn.ts';
import { netsOverlap, parseNet, type IpVersion } from '../ipam.ts';

/** vpn_validator.IP_MIN_MTU */
export const IP_MIN_MTU: Record<IpVersion, number> = { 4: 68, 6: 1280 };

/** A partial lifetime from the wire over the stored one (or the default). */
export function mergeLifetime(given: Partial<Lifetime> | undefined, current: Lifetime = DEFAULT_LIFETIME): Lifetime {
  return { ...current, ...given };
}

/** assign_sensible_ipsec_sitecon_defaults: a partial dpd over the stored one (or the default). */
export function mergeDpd(given: Partial<Dpd> | undefined, current: Dpd = DEFAULT_DPD): Dpd {
  return { ...current, ...given };
}

export function checkDpd(d: Dpd): void {
  if (d.timeout <= d.interval) throw new IPsecSiteConnectionDpdIntervalValueError('dpd_timeout');
}

export function checkMtu(mtu: number, version: IpVersion): void {
  if (mtu < IP_MIN_MTU[version]) throw new IPsecSiteConnectionMtuError(mtu, version);
}

export interface ConnectionShape {
  peer_cidrs: string[];
  local_ep_group_id: string | null;
  peer_ep_group_id: string | null;
}

/**
 * validate_ipsec_conn_optional_args: a legacy service (with a subnet) takes
 * peer_cidrs and no endpoint groups; a service without one takes both groups
 * and no peer_cidrs.
 */
export function checkConnectionShape(c: ConnectionShape, serviceHasSubnet: boolean): void {
  if (serviceHasSubnet) {
    if (c.peer_cidrs.length === 0) throw new MissingPeerCidrs();
    const given = [c.local_ep_group_id && 'local', c.peer_ep_group_id && 'peer'].filter(Boolean) as string[];
    if (given.length) throw new InvalidEndpointGroup(given);
    return;
  }
  if (c.peer_cidrs.length) throw new PeerCidrsInvalid();
  const missing = [!c.local_ep_group_id && 'local', !c.peer_ep_group_id && 'peer'].filter(Boolean) as string[];
  if (missing.length) throw new MissingRequiredEndpointGroup(missing);
}

export function checkGroupType(groupId: string, actual: string, expected: EndpointType): void {
  if (actual !== expected) throw new WrongEndpointGroupType(groupId, actual, expected);
}

/** The one IP version of a list of CIDRs, or null when mixed (or empty). */
export function ipVersionOf(cidrs: string[]): IpVersion | null {
  const versions = new Set(cidrs.map((c) => parseNet(c)!.version));
  return versions.size === 1 ? [...versions][0] : null;
}

/** _check_local_endpoint_ip_versions / _check_peer_endpoint_ip_versions */
export function groupIpVersion(groupId: string, cidrs: string[]): IpVersion {
  const v = ipVersionOf(cidrs);
  if (v === null) throw new MixedIPVersionsForIPSecEndpoints(groupId);
  return v;
}

/** _check_peer_cidrs_ip_versions */
export function peerCidrsIpVersion(cidrs: string[]): IpVersion {
  const v = ipVersionOf(cidrs);
  if (v === null) throw new MixedIPVersionsForPeerCidrs();
  return v;
}

export function checkCompatibleVersions(local: IpVersion, peer: IpVersion): void {
  if (local !== peer) throw new MixedIPVersionsForIPSecConnection();
}

/**
 * Nucleon's own rule: a peer CIDR overlapping a local subnet would route the
 * site's own traffic into the tunnel (neutron-vpnaas accepts it).
 */
export function checkNoOverlap(localCidrs: string[], peerCidrs: string[]): void {
  for (const p of peerCidrs) {
    for (const l of localCidrs) {
      if (netsOverlap(parseNet(p)!, parseNet(l)!)) throw new PeerCidrOverlapsLocalSubnet(p, l);
    }
  }
}

const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/**
 * validate_endpoint_group's checks that need no store: at least one endpoint,
 * and each well-formed for its type (subnet existence is the service's).
 * Returns the endpoints normalized (UUIDs lower-case).
 */
export function checkEndpoints(groupName: string, type: EndpointType, endpoints: string[]): string[] {
  if (endpoints.length === 0) throw new MissingEndpointForEndpointGroup(groupName);
  return endpoints.map((e) => {
    switch (type) {
      case 'cidr':
        if (!parseNet(e)) throw new InvalidEndpointInEndpointGroup(e, type, 'Invalid CIDR');
        return e;
      case 'vlan': {
        const n = /^\d+$/.test(e) ? Number(e) : NaN;
        if (!(n >= 1 && n <= 4094)) throw new InvalidEndpointInEndpointGroup(e, type, 'Invalid VLAN ID');
        return e;
      }
      default:
        if (!UUID_RE.test(e)) throw new InvalidEndpointInEndpointGroup(e, type, 'Invalid UUID');
        return e.toLowerCase();
    }
  });
}
