// DHCP on a network node, as Neutron's dhcp agent runs it: per network, a
// namespace holding the network:dhcp port and one dnsmasq with static leases
// only (hosts file from the ports' fixed IPs), options per subnet and port.
// IPv4 only: IPv6 addressing (SLAAC / DHCPv6) is not served yet.
import type { HostConfig, ModelNetwork, ModelPort, ModelSubnet } from '../model.ts';
import { dhcpNamespace, tapName, type DhcpServer, type NamespacePlan } from '../plan.ts';
import { formatIp, formatNet, type Net } from '../../services/ipam.ts';
import { isIpv4 } from './addresses.ts';
import type { Leg, NetworkWiring } from './l2.ts';
import { interfaceAddresses, isNetworkPort, type ModelLookup } from './lookup.ts';
import { dhcpLegName, id11, sha256, sortBy } from './util.ts';

export interface DhcpPlan {
  namespaces: NamespacePlan[];
  legs: Leg[];
  servers: DhcpServer[];
}

/** Neutron's default dnsmasq_lease_max. */
const LEASE_MAX_CAP = 2 ** 24;
const LEASE_TIME = '86400s';
const DOMAIN = 'openstacklocal';

const subnetTag = (s: ModelSubnet) => `subnet-${id11(s.id)}`;
const portTag = (p: ModelPort) => `port-${id11(p.id)}`;
const hostName = (ip: string) => `host-${ip.replace(/[.:]/g, '-')}`;

/** A served subnet: DHCP-enabled IPv4 on which the DHCP port holds an address. */
interface Served { subnet: ModelSubnet; net: Net; serverIp: string }

export function planDhcp(lookup: ModelLookup, config: HostConfig, wiringOf: (networkId: string) => NetworkWiring): DhcpPlan {
  const out: DhcpPlan = { namespaces: [], legs: [], servers: [] };
  for (const network of sortBy(lookup.model.networks, (n) => n.id)) {
    // The dhcp agent serves nothing on an admin-down network.
    if (!network.admin_state_up) continue;
    const ports = lookup.portsByNetwork.get(network.id) ?? [];
    const port = pickDhcpPort(ports, config.host);
    if (!port) continue;
    const served = servedSubnets(lookup, network, port);
    if (served.length === 0) continue;
    out.legs.push({ port, network, device: tapName(port.id) });
    if (!wiringOf(network.id).pluggable) continue;

    const namespace = dhcpNamespace(config.namespacePrefix, network.id);
    const device = dhcpLegName(port.id);
    out.namespaces.push({
      name: namespace, kind: 'dhcp', owner: network.id,
      bridges: [], vxlans: [], vlans: [], plugs: [],
      veths: [{ name: device, mac: port.mac_address, mtu: network.mtu, peer: { name: tapName(port.id), namespace: '' } }],
      addresses: interfaceAddresses(lookup, port).map((cidr) => ({ device, cidr })),
      routes: [], sysctls: {}, nft: [],
    });
    out.servers.push(dhcpServer(lookup, config, network, ports, served, namespace, device));
  }
  return out;
}

/** The runtime creates the DHCP port; prefer the one bound to this host, then the lowest id. */
function pickDhcpPort(ports: ModelPort[], host: string): ModelPort | undefined {
  const dhcp = ports.filter((p) => p.device_owner === 'network:dhcp');
  return dhcp.find((p) => p.binding_host_id === host) ?? dhcp[0];
}

function servedSubnets(lookup: ModelLookup, network: ModelNetwork, port: ModelPort): Served[] {
  const out: Served[] = [];
  for (const subnet of lookup.subnetsByNetwork.get(network.id) ?? []) {
    const net = lookup.subnetNets.get(subnet.id);
    const serverIp = port.fixed_ips.find((f) => f.subnet_id === subnet.id)?.ip_address;
    // dnsmasq can only answer on a subnet its interface has an address in.
    if (subnet.ip_version === 4 && subnet.enable_dhcp && net && serverIp) out.push({ subnet, net, serverIp });
  }
  return out;
}

function dhcpServer(
  lookup: ModelLookup, config: HostConfig, network: ModelNetwork, ports: ModelPort[], served: Served[], namespace: string, device: string,
): DhcpServer {
  const dir = `${config.stateDir.replace(/\/+$/, '')}/dhcp/${network.id}`;
  const servedIds = new Set(served.map((s) => s.subnet.id));
  const hosts: string[] = [];
  const addnHosts: string[] = [];
  const portOpts: string[] = [];
  // Router and DHCP ports never ask for a lease; every other port of the
  // network does, wherever it is bound.
  for (const port of ports) {
    if (isNetworkPort(port)) continue;
    const ips = port.fixed_ips.filter((f) => servedIds.has(f.subnet_id)).map((f) => f.ip_address);
    for (const ip of ips) {
      hosts.push(`${port.mac_address},${hostName(ip)},${ip},set:${portTag(port)}`);
      addnHosts.push(`${ip}\t${hostName(ip)}.${DOMAIN} ${hostName(ip)}`);
    }
    if (ips.length) portOpts.push(...extraOptions(port));
  }
  const opts = [...served.flatMap((s) => subnetOptions(lookup, network, s)), ...portOpts];
  const files: Record<string, string> = {
    host: text(hosts),
    opts: text(opts),
    addn_hosts: text(addnHosts),
  };
  const leaseMax = Math.min(LEASE_MAX_CAP, served.reduce((n, s) => n + 2 ** (32 - s.net.prefixlen), 0));
  const args = [
    '--no-hosts', '--no-resolv',
    `--pid-file=${dir}/pid`,
    `--dhcp-hostsfile=${dir}/host`,
    `--dhcp-optsfile=${dir}/opts`,
    `--addn-hosts=${dir}/addn_hosts`,
    `--dhcp-leasefile=${dir}/leases`,
    ...served.map((s) => `--dhcp-range=set:${subnetTag(s.subnet)},${formatIp(4, s.net.first)},static,${netmask(s.net)},${LEASE_TIME}`),
    `--interface=${device}`,
    '--bind-interfaces', '--except-interface=lo',
    `--domain=${DOMAIN}`,
    '--log-dhcp', `--log-facility=${dir}/dnsmasq.log`,
    // Root keeps the lease and log files in dir writable (notes, section 6).
    '--user=root',
    `--dhcp-lease-max=${leaseMax}`,
  ];
  return { network_id: network.id, namespace, interface: device, dir, files, args, hash: sha256(JSON.stringify({ files, args })) };
}

const text = (lines: string[]) => (lines.length ? `${lines.join('\n')}\n` : '');

const netmask = (net: Net) => formatIp(4, ((1n << 32n) - 1n) ^ ((1n << BigInt(32 - net.prefixlen)) - 1n));

/** Per-subnet options, as Neutron's dnsmasq driver writes them. */
function subnetOptions(lookup: ModelLookup, network: ModelNetwork, s: Served): string[] {
  const tag = `tag:${subnetTag(s.subnet)}`;
  let gateway = s.subnet.gateway_ip;
  const routes: string[] = [];
  // Other IPv4 subnets of the network are on-link.
  for (const other of lookup.subnetsByNetwork.get(network.id) ?? []) {
    const net = lookup.subnetNets.get(other.id);
    if (other.id !== s.subnet.id && other.ip_version === 4 && net) routes.push(`${formatNet(net)},0.0.0.0`);
  }
  for (const r of s.subnet.host_routes) {
    // A default host route stands in for a missing gateway (Neutron does the same).
    if (r.destination === '0.0.0.0/0') gateway ??= r.nexthop;
    else if (isIpv4(r.nexthop)) routes.push(`${r.destination},${r.nexthop}`);
  }
  const dns = s.subnet.dns_nameservers.filter(isIpv4);
  const lines = [
    // A bare `option:router` stops dnsmasq from offering itself as the router.
    gateway ? `${tag},option:router,${gateway}` : `${tag},option:router`,
    `${tag},option:dns-server,${(dns.length ? dns : [s.serverIp]).join(',')}`,
    `${tag},option:mtu,${network.mtu}`,
  ];
  // Option 121 replaces the router option on clients that support it, so it must repeat the default route.
  if (routes.length) lines.push(`${tag},option:classless-static-route,${[...routes, ...(gateway ? [`0.0.0.0/0,${gateway}`] : [])].join(',')}`);
  return lines;
}

/** extra_dhcp_opts of a port (IPv4 ones), by name: numeric names are option numbers. */
function extraOptions(port: ModelPort): string[] {
  return sortBy(port.extra_dhcp_opts.filter((o) => (o.ip_version ?? 4) === 4), (o) => o.opt_name)
    .map((o) => `tag:${portTag(port)},${/^\d+$/.test(o.opt_name) ? o.opt_name : `option:${o.opt_name}`},${o.opt_value}`);
}
