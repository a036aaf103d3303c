// Routers on a network node, as Neutron's l3 agent builds them: one namespace
// per router with a qr- leg per interface, a qg- leg on the external network,
// routes, forwarding, and an nft table for SNAT and floating IPs in the shape
// verified in the data-plane notes (section 3).
import type { HostConfig, ModelFloatingIp, ModelPort, ModelRouter } from '../model.ts';
import { routerNamespace, tapName, type Address, type NamespacePlan, type NftTable, type Route, type Veth } from '../plan.ts';
import { formatNet, parseNet } from '../../services/ipam.ts';
import { isIpv4 } from './addresses.ts';
import type { Leg, NetworkWiring } from './l2.ts';
import { interfaceAddresses, portIpVersions, type ModelLookup } from './lookup.ts';
import { push, quote, routerLegName, sortBy } from './util.ts';

export const NAT_TABLE = 'nucleon_nat';

export interface RoutersPlan {
  namespaces: NamespacePlan[];
  legs: Leg[];
  routers: string[];
  floatingips: string[];
}

/** One wired leg of a router: its device inside the namespace and its addresses there. */
interface RouterLeg {
  port: ModelPort;
  device: string;
  /** `ip/prefixlen` of the port's fixed IPs. */
  addresses: string[];
}

const isV4 = (text: string | null): text is string => text !== null && isIpv4(text);

export function planRouters(lookup: ModelLookup, config: HostConfig, wiringOf: (networkId: string) => NetworkWiring): RoutersPlan {
  const out: RoutersPlan = { namespaces: [], legs: [], routers: [], floatingips: [] };
  const fipsByRouter = new Map<string, ModelFloatingIp[]>();
  for (const f of sortBy(lookup.model.floatingips, (f) => f.id)) {
    if (f.router_id !== null) push(fipsByRouter, f.router_id, f);
  }
  for (const router of sortBy(lookup.model.routers, (r) => r.id)) {
    // An admin-down router is not served at all: no namespace, its ports DOWN (as the l3 agent does).
    if (!router.admin_state_up) continue;
    const r = planRouter(lookup, config, router, fipsByRouter.get(router.id) ?? [], wiringOf);
    out.namespaces.push(r.namespace);
    out.legs.push(...r.legs);
    out.routers.push(router.id);
    out.floatingips.push(...r.floatingips);
  }
  out.floatingips.sort();
  return out;
}

function planRouter(
  lookup: ModelLookup, config: HostConfig, router: ModelRouter, fips: ModelFloatingIp[],
  wiringOf: (networkId: string) => NetworkWiring,
): { namespace: NamespacePlan; legs: Leg[]; floatingips: string[] } {
  const legs: Leg[] = [];
  const veths: Veth[] = [];
  /** Adds a leg for a port; returns its in-namespace side when the port's network can be wired here. */
  const wire = (portId: string | null, kind: 'qr' | 'qg'): RouterLeg | null => {
    const port = portId === null ? undefined : lookup.ports.get(portId);
    const network = port && lookup.networks.get(port.network_id);
    if (!port || !network) return null;
    legs.push({ port, network, device: tapName(port.id) });
    if (!wiringOf(network.id).pluggable) return null;
    const device = routerLegName(kind, port.id);
    // The host end is named like a VM tap, so L2 plugs it the same way; '' is the host namespace.
    veths.push({ name: device, mac: port.mac_address, mtu: network.mtu, peer: { name: tapName(port.id), namespace: '' } });
    return { port, device, addresses: interfaceAddresses(lookup, port) };
  };
  const gateway = wire(router.gw_port_id, 'qg');
  const interfaces = sortBy(router.interface_port_ids, (id) => id).map((id) => wire(id, 'qr')).filter((l): l is RouterLeg => l !== null);

  // A floating IP needs the gateway leg (its /32 lives on qg) and IPv4 on both ends.
  const served = gateway === null ? [] : fips.filter((f) => f.port_id !== null && isV4(f.fixed_ip_address) && isV4(f.floating_ip_address));

  const addresses: Address[] = [];
  for (const leg of [...(gateway ? [gateway] : []), ...interfaces]) {
    for (const cidr of leg.addresses) addresses.push({ device: leg.device, cidr });
  }
  // The router answers ARP for its floating IPs on the external network.
  if (gateway) for (const f of served) addresses.push({ device: gateway.device, cidr: `${f.floating_ip_address}/32` });

  const sysctls: Record<string, string> = { 'net.ipv4.ip_forward': '1' };
  const attached = [gateway, ...interfaces].filter((l): l is RouterLeg => l !== null);
  if (attached.some((l) => portIpVersions(lookup, l.port).has(6))) sysctls['net.ipv6.conf.all.forwarding'] = '1';

  return {
    namespace: {
      name: routerNamespace(config.namespacePrefix, router.id),
      kind: 'router',
      owner: router.id,
      bridges: [], vxlans: [], vlans: [], plugs: [],
      veths,
      addresses,
      routes: routerRoutes(lookup, router, gateway),
      sysctls,
      nft: [natTable(router, gateway, interfaces, served)],
    },
    legs,
    floatingips: served.map((f) => f.id),
  };
}

/** Default route(s) via the external subnets' gateways, then the extra routes. */
function routerRoutes(lookup: ModelLookup, router: ModelRouter, gateway: RouterLeg | null): Route[] {
  const routes: Route[] = [];
  if (gateway) {
    const seen = new Set<number>();
    for (const f of gateway.port.fixed_ips) {
      const subnet = lookup.subnets.get(f.subnet_id);
      if (!subnet?.gateway_ip || seen.has(subnet.ip_version)) continue;
      seen.add(subnet.ip_version);
      routes.push({ destination: subnet.ip_version === 4 ? 'default' : '::/0', via: subnet.gateway_ip, device: gateway.device });
    }
  }
  for (const r of sortBy(router.routes, (r) => `${r.destination} ${r.nexthop}`)) routes.push({ destination: r.destination, via: r.nexthop });
  return routes;
}

/**
 * SNAT and floating IPs (notes, section 3). Every SNAT rule matches
 * `oifname` qg, so traffic leaving through a VPN tunnel is never translated.
 */
function natTable(router: ModelRouter, gateway: RouterLeg | null, interfaces: RouterLeg[], fips: ModelFloatingIp[]): NftTable {
  const dnat: Record<string, string> = {};
  const snat: Record<string, string> = {};
  for (const f of fips) {
    dnat[f.floating_ip_address] = f.fixed_ip_address!;
    snat[f.fixed_ip_address!] = f.floating_ip_address;
  }
  const post: string[] = [];
  if (gateway) {
    const qg = quote(gateway.device);
    post.push(`oifname ${qg} snat to ip saddr map @fip_snat`);
    const gatewayIp = gateway.addresses.map((a) => a.split('/')[0]).find(isV4);
    if (router.enable_snat && gatewayIp) {
      for (const leg of interfaces) {
        for (const cidr of v4Subnets(leg)) post.push(`oifname ${qg} ip saddr ${cidr} snat to ${gatewayIp}`);
      }
    }
  }
  // Hairpin: a VM reaching another VM's floating IP through the same interface
  // must see the reply come back through the router, so the source becomes the router's address.
  for (const leg of interfaces) {
    const qr = quote(leg.device);
    for (const a of leg.addresses) {
      const [ip] = a.split('/');
      if (isV4(ip)) post.push(`iifname ${qr} oifname ${qr} ip daddr ${networkOf(a)} ct status dnat snat to ${ip}`);
    }
  }
  return {
    family: 'ip',
    name: NAT_TABLE,
    sets: {},
    maps: {
      fip_dnat: { type: 'ipv4_addr : ipv4_addr', elements: dnat },
      fip_snat: { type: 'ipv4_addr : ipv4_addr', elements: snat },
    },
    chains: {
      pre: { hook: { type: 'nat', hook: 'prerouting', priority: 'dstnat', policy: 'accept' }, rules: ['dnat to ip daddr map @fip_dnat'] },
      // Router-local access to floating IPs (the router itself reaching a FIP).
      out: { hook: { type: 'nat', hook: 'output', priority: '-100', policy: 'accept' }, rules: ['dnat to ip daddr map @fip_dnat'] },
      post: { hook: { type: 'nat', hook: 'postrouting', priority: 'srcnat', policy: 'accept' }, rules: post },
    },
  };
}

/** The IPv4 networks (CIDR text) a leg's addresses are on. */
function v4Subnets(leg: RouterLeg): string[] {
  return leg.addresses.filter((a) => isV4(a.split('/')[0])).map(networkOf);
}

/** `10.0.0.1/24` → `10.0.0.0/24`. */
const networkOf = (address: string): string => formatNet(parseNet(address)!);
