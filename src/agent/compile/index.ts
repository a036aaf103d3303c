// compileHost: the logical model, this host's configuration and the few
// facts binding depends on → the complete plan of what this host should look
// like. Pure and deterministic: the same input gives the same plan, whatever
// the order of the input lists, and nothing is read from the host, so an
// incremental compile (the previous plan's numbers as facts) equals a full one.
import type { HostConfig, HostFacts, LogicalModel } from '../model.ts';
import type { HostPlan, NamespacePlan, Plug, PortBinding } from '../plan.ts';
import { planDhcp } from './dhcp.ts';
import { planFirewall, type FirewalledPort } from './firewall.ts';
import { assignNumbers } from './indexes.ts';
import { hostL2, legBinding, legPlug, networkWiring, vmLegs, vxlanRemotes, type Leg, type NetworkWiring } from './l2.ts';
import { lookupModel } from './lookup.ts';
import { planIpsec, type IpsecRouter } from './ipsec.ts';
import { planRouters } from './routers.ts';
import { sortBy } from './util.ts';

export { renderNftTable } from './nft.ts';
export { L2_TABLE, SG_TABLE } from './firewall.ts';
export { NAT_TABLE } from './routers.ts';

/**
 * Sysctls of the namespace that holds the bridges: bridged IPv4/IPv6 must go
 * through the inet hooks for the security groups to see it. They default to 1
 * in every namespace on this kernel; the plan says so explicitly anyway.
 */
const BRIDGE_SYSCTLS: Record<string, string> = {
  'net.bridge.bridge-nf-call-ip6tables': '1',
  'net.bridge.bridge-nf-call-iptables': '1',
};

export function compileHost(model: LogicalModel, config: HostConfig, facts: HostFacts): HostPlan {
  const lookup = lookupModel(model);
  const remotes = vxlanRemotes(model.peers, config);
  const wirings = new Map<string, NetworkWiring>();
  const wiringOf = (networkId: string): NetworkWiring => {
    let w = wirings.get(networkId);
    if (!w) {
      w = networkWiring(lookup.networks.get(networkId)!, config, remotes);
      wirings.set(networkId, w);
    }
    return w;
  };

  const routers = config.networkNode ? planRouters(lookup, config, wiringOf) : { namespaces: [], legs: [], routers: [], floatingips: [] };
  const dhcp = config.networkNode ? planDhcp(lookup, config, wiringOf) : { namespaces: [], legs: [], servers: [] };
  const vms = vmLegs(lookup, facts);
  const legs: Leg[] = [...vms, ...routers.legs, ...dhcp.legs];

  const bindings: PortBinding[] = [];
  const plugs: Plug[] = [];
  for (const leg of legs) {
    const wiring = wiringOf(leg.network.id);
    bindings.push(legBinding(leg, wiring));
    const plug = legPlug(leg, wiring);
    if (plug) plugs.push(plug);
  }

  // Every network with a leg here gets its bridge (and uplink), even when its
  // legs failed to bind: a VLAN network still shows up, compile-only.
  const here = sortBy(new Set(legs.map((l) => l.network.id)), (id) => id).map(wiringOf);
  // Conntrack zones only on Nucleon's own bridges. In the inet hooks a zone
  // can only be chosen by iifname (the bridge), which on an operator bridge
  // like br-ex also matches the host's own traffic: its replies leave in zone
  // 0, so zoning it would turn the host's connections invalid. Flat networks
  // therefore stay in the default zone 0, shared with the host.
  const zoned = here.filter((w) => w.ownBridge && w.bridge !== null);
  const networkZones = assignNumbers(facts.networkZones, new Set(lookup.networks.keys()), zoned.map((w) => w.network.id));

  // Filtered: VM ports plugged (or pluggable) here with port security on.
  // Admin-down ports keep their chains, so toggling admin state renumbers nothing.
  const filtered = vms.filter((l) => wiringOf(l.network.id).pluggable && l.port.port_security_enabled);
  const portIndexes = assignNumbers(facts.portIndexes, new Set(lookup.ports.keys()), filtered.map((l) => l.port.id));
  const firewalled: FirewalledPort[] = filtered.map((l) => ({
    port: l.port, device: l.device, index: portIndexes[l.port.id], zone: networkZones[l.network.id] ?? 0,
  }));
  const zoneByBridge = new Map<string, number>();
  for (const w of zoned) zoneByBridge.set(w.bridge!, networkZones[w.network.id]);
  const firewall = planFirewall({
    ports: firewalled,
    zones: sortBy(zoneByBridge, ([bridge]) => bridge).map(([bridge, zone]) => ({ bridge, zone })),
    security: model.security,
  });

  const host: NamespacePlan = {
    name: '',
    kind: 'host',
    ...hostL2(here),
    veths: [],
    plugs: sortBy(plugs, (p) => p.device),
    addresses: [],
    routes: [],
    sysctls: { ...BRIDGE_SYSCTLS },
    nft: firewall.tables,
  };

  // VPNaaS: a charon per router namespace with VPN connections, and the
  // unreachable routes for their peer CIDRs added to those namespaces.
  const ipsecRouters: IpsecRouter[] = routers.namespaces.map((ns) => {
    const gw = lookup.ports.get(lookup.model.routers.find((r) => r.id === ns.owner)?.gw_port_id ?? '');
    return { router_id: ns.owner!, namespace: ns.name, gatewayIp: gw?.fixed_ips.map((f) => f.ip_address).find((ip) => !ip.includes(':')) ?? null };
  });
  const ipsec = planIpsec(model.ipsecConnections ?? [], ipsecRouters, config.stateDir, config.ipsecBackend ?? 'libipsec');
  for (const ns of routers.namespaces) ns.routes.push(...(ipsec.routes.get(ns.name) ?? []));

  return {
    host: config.host,
    namespaces: [host, ...sortBy([...routers.namespaces, ...dhcp.namespaces], (n) => n.name)],
    firewall: firewall.ports,
    dhcp: dhcp.servers,
    bindings: sortBy(bindings, (b) => b.port_id),
    routers: routers.routers,
    floatingips: routers.floatingips,
    portIndexes,
    networkZones,
    ...(ipsec.instances.length ? { ipsec: ipsec.instances } : {}),
  };
}
