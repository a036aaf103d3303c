// Layer 2 in the host namespace: one bridge per network this host needs, its
// uplink (VXLAN device, VLAN sub-interface, or the operator's mapped bridge for
// flat networks), and every port leg plugged into it — the Neutron linuxbridge
// agent's job.
import type { HostConfig, HostFacts, ModelNetwork, ModelPeer, ModelPort } from '../model.ts';
import { bridgeName, tapName, type Bridge, type Plug, type PortBinding, type VlanLink, type VxlanLink } from '../plan.ts';
import { isVmPort, type ModelLookup } from './lookup.ts';
import { cmp, sortBy, uniq, vxlanName } from './util.ts';

/** How one network is wired on this host. */
export interface NetworkWiring {
  network: ModelNetwork;
  /** The bridge its legs plug into; null when none can exist here (flat physnet without a mapping). */
  bridge: string | null;
  /**
   * The bridge is Nucleon's own (brq…): nothing but bridged tenant traffic
   * crosses it. A mapped bridge (br-ex) is the operator's and may carry the
   * host's own addresses.
   */
  ownBridge: boolean;
  /** Legs can be plugged (vif_type 'bridge'); false: their ports get 'binding_failed'. */
  pluggable: boolean;
  vxlan: VxlanLink | null;
  vlan: VlanLink | null;
}

/** Underlay addresses to flood VXLAN to: every other agent host, once, sorted. */
export function vxlanRemotes(peers: ModelPeer[], config: HostConfig): string[] {
  const others = peers.filter((p) => p.host !== config.host && p.underlay_ip !== config.underlayIp).map((p) => p.underlay_ip);
  return uniq(others).sort(cmp);
}

export function networkWiring(network: ModelNetwork, config: HostConfig, remotes: string[]): NetworkWiring {
  const none = { vxlan: null, vlan: null };
  switch (network.network_type) {
    case 'flat': {
      // The operator's bridge (e.g. br-ex with the uplink in it), as linuxbridge's bridge_mappings.
      const bridge = network.physical_network === null ? null : config.bridgeMappings[network.physical_network] ?? null;
      return { network, bridge, ownBridge: false, pluggable: bridge !== null, ...none };
    }
    case 'vlan': {
      // Planned for completeness, but this kernel has no VLAN devices (see the
      // data-plane notes): the bridge would have no uplink, so binding fails.
      const bridge = bridgeName(network.id);
      const parent = network.physical_network === null ? undefined : config.vlanInterfaces[network.physical_network];
      const vlan = parent && network.segmentation_id !== null
        ? { name: `${parent}.${network.segmentation_id}`, parent, vid: network.segmentation_id, bridge }
        : null;
      return { network, bridge, ownBridge: true, pluggable: false, vxlan: null, vlan };
    }
    case 'vxlan': {
      const bridge = bridgeName(network.id);
      if (network.segmentation_id === null) return { network, bridge, ownBridge: true, pluggable: false, ...none };
      // Without an underlay address the network stays local to this host (all-in-one).
      const vxlan = config.underlayIp === null ? null : {
        name: vxlanName(network.segmentation_id), vni: network.segmentation_id, bridge, mtu: network.mtu,
        local: config.underlayIp, device: config.underlayInterface, remotes,
      };
      return { network, bridge, ownBridge: true, pluggable: true, vxlan, vlan: null };
    }
    case 'local':
      return { network, bridge: bridgeName(network.id), ownBridge: true, pluggable: true, ...none };
  }
}

/**
 * A port wired on this host: a VM tap, or the host end of a router or DHCP
 * veth. Every leg gets a binding; pluggable active legs get a plug.
 */
export interface Leg {
  port: ModelPort;
  network: ModelNetwork;
  /** Host-side device (tap<port id 11>). */
  device: string;
}

/** VM ports whose tap the hypervisor has plugged in here, by port id. */
export function vmLegs(lookup: ModelLookup, facts: HostFacts): Leg[] {
  const taps = new Set(facts.taps);
  const legs: Leg[] = [];
  for (const port of sortBy(lookup.model.ports, (p) => p.id)) {
    const network = lookup.networks.get(port.network_id);
    if (!network || !isVmPort(port) || !taps.has(tapName(port.id))) continue;
    legs.push({ port, network, device: tapName(port.id) });
  }
  return legs;
}

// Admin-down routers and DHCP on admin-down networks have no legs at all, so port and network decide.
const legActive = (leg: Leg): boolean => leg.port.admin_state_up && leg.network.admin_state_up;

export function legBinding(leg: Leg, wiring: NetworkWiring): PortBinding {
  return wiring.pluggable
    ? { port_id: leg.port.id, vif_type: 'bridge', active: legActive(leg) }
    : { port_id: leg.port.id, vif_type: 'binding_failed', active: false };
}

/**
 * The plug of a leg, or null. An admin-down leg is left out of its bridge
 * (no traffic at all), as the linuxbridge agent sets such a tap down.
 */
export function legPlug(leg: Leg, wiring: NetworkWiring): Plug | null {
  if (!wiring.pluggable || wiring.bridge === null || !legActive(leg)) return null;
  return { device: leg.device, bridge: wiring.bridge, mtu: leg.network.mtu };
}

/** Bridges and uplinks of the networks with a leg here, deduplicated and sorted by name. */
export function hostL2(wirings: NetworkWiring[]): { bridges: Bridge[]; vxlans: VxlanLink[]; vlans: VlanLink[] } {
  const bridges = new Map<string, Bridge>();
  const vxlans = new Map<string, VxlanLink>();
  const vlans = new Map<string, VlanLink>();
  for (const w of sortBy(wirings, (w) => w.network.id)) {
    // Two flat networks on one physnet share the mapped bridge: the first (by id) sets its mtu.
    if (w.bridge !== null && !bridges.has(w.bridge)) bridges.set(w.bridge, { name: w.bridge, mtu: w.network.mtu });
    if (w.vxlan && !vxlans.has(w.vxlan.name)) vxlans.set(w.vxlan.name, w.vxlan);
    if (w.vlan && !vlans.has(w.vlan.name)) vlans.set(w.vlan.name, w.vlan);
  }
  const byName = <T extends { name: string }>(m: Map<string, T>) => sortBy(m.values(), (x) => x.name);
  return { bridges: byName(bridges), vxlans: byName(vxlans), vlans: byName(vlans) };
}
