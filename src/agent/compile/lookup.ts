// One pass over the logical model into maps, so that every other compile
// module looks things up by id instead of scanning lists (1,000s of ports).
import type { LogicalModel, ModelNetwork, ModelPort, ModelSubnet } from '../model.ts';
import { parseIp, parseNet, type Net } from '../../services/ipam.ts';
import { push, sortBy } from './util.ts';

export interface ModelLookup {
  model: LogicalModel;
  networks: Map<string, ModelNetwork>;
  subnets: Map<string, ModelSubnet>;
  /** Subnets of a network, by subnet id. */
  subnetsByNetwork: Map<string, ModelSubnet[]>;
  ports: Map<string, ModelPort>;
  /** Ports of a network, by port id. */
  portsByNetwork: Map<string, ModelPort[]>;
  /** Parsed subnet CIDRs (null when unparsable: such a subnet is ignored). */
  subnetNets: Map<string, Net | null>;
}

export function lookupModel(model: LogicalModel): ModelLookup {
  const subnetsByNetwork = new Map<string, ModelSubnet[]>();
  for (const s of sortBy(model.subnets, (s) => s.id)) push(subnetsByNetwork, s.network_id, s);
  const portsByNetwork = new Map<string, ModelPort[]>();
  for (const p of sortBy(model.ports, (p) => p.id)) push(portsByNetwork, p.network_id, p);
  return {
    model,
    networks: new Map(model.networks.map((n) => [n.id, n])),
    subnets: new Map(model.subnets.map((s) => [s.id, s])),
    subnetsByNetwork,
    ports: new Map(model.ports.map((p) => [p.id, p])),
    portsByNetwork,
    subnetNets: new Map(model.subnets.map((s) => [s.id, parseNet(s.cidr)])),
  };
}

/** A VM port: plugged by a hypervisor (compute:*, or no owner yet), never by this agent. */
export const isVmPort = (p: ModelPort): boolean => p.device_owner === '' || p.device_owner.startsWith('compute:');

/** Router, DHCP and other network-owned ports: wired by this agent, never firewalled. */
export const isNetworkPort = (p: ModelPort): boolean => p.device_owner.startsWith('network:');

/**
 * A port's fixed IPs as interface addresses (`ip/prefixlen` of their subnet),
 * in the port's order; IPs on unknown subnets are skipped.
 */
export function interfaceAddresses(lookup: ModelLookup, port: ModelPort): string[] {
  const out: string[] = [];
  for (const f of port.fixed_ips) {
    const net = lookup.subnetNets.get(f.subnet_id);
    if (net && parseIp(f.ip_address)?.version === net.version) out.push(`${f.ip_address}/${net.prefixlen}`);
  }
  return out;
}

/** The IP versions of the subnets a port has addresses on. */
export function portIpVersions(lookup: ModelLookup, port: ModelPort): Set<4 | 6> {
  return new Set(port.fixed_ips.map((f) => lookup.subnets.get(f.subnet_id)?.ip_version).filter((v): v is 4 | 6 => v !== undefined));
}
