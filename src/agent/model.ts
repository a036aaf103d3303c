// The compile step's input: the logical model (what the API says should exist)
// as one agent host needs it, plus the few facts about the host that binding
// depends on (which VM taps are plugged in). Plain data, no behaviour: the
// loader (load-model.ts) fills it from the store; tests build it by hand.
import type { SecurityPolicy } from '../services/security-policy.ts';

export interface ModelNetwork {
  id: string;
  project_id: string;
  admin_state_up: boolean;
  mtu: number;
  network_type: 'flat' | 'vlan' | 'vxlan' | 'local';
  physical_network: string | null;
  segmentation_id: number | null;
  router_external: boolean;
}

export interface ModelSubnet {
  id: string;
  network_id: string;
  ip_version: 4 | 6;
  cidr: string;
  gateway_ip: string | null;
  enable_dhcp: boolean;
  dns_nameservers: string[];
  host_routes: Array<{ destination: string; nexthop: string }>;
}

export interface ModelPort {
  id: string;
  project_id: string;
  network_id: string;
  mac_address: string;
  admin_state_up: boolean;
  device_owner: string;
  device_id: string;
  binding_host_id: string;
  fixed_ips: Array<{ subnet_id: string; ip_address: string }>;
  port_security_enabled: boolean;
  allowed_address_pairs: Array<{ ip_address: string; mac_address: string }>;
  security_groups: string[];
  extra_dhcp_opts: Array<{ opt_name: string; opt_value: string; ip_version?: number }>;
}

export interface ModelRouter {
  id: string;
  project_id: string;
  admin_state_up: boolean;
  enable_snat: boolean;
  /** The network:router_gateway port, or null without a gateway. */
  gw_port_id: string | null;
  /** The network:router_interface ports. */
  interface_port_ids: string[];
  routes: Array<{ destination: string; nexthop: string }>;
}

export interface ModelFloatingIp {
  id: string;
  floating_ip_address: string;
  floating_network_id: string;
  router_id: string | null;
  port_id: string | null;
  fixed_ip_address: string | null;
}

/** Another agent host, for VXLAN flooding. */
export interface ModelPeer {
  host: string;
  underlay_ip: string;
}

/** One ipsec-site-connection as the agent needs it: policies resolved, PSK decrypted (in memory only). */
export interface ModelIpsecConnection {
  id: string;
  vpnservice_id: string;
  router_id: string;
  /** The connection's and its service's admin_state_up together. */
  admin_state_up: boolean;
  peer_address: string;
  peer_id: string;
  /** Subnets behind the router (legacy subnet_id or the local endpoint group). */
  local_cidrs: string[];
  /** peer_cidrs or the peer endpoint group. */
  peer_cidrs: string[];
  /** Never logged, never written but to 0600 files or over vici. */
  psk: string;
  mtu: number;
  initiator: 'bi-directional' | 'response-only';
  dpd: { action: 'hold' | 'clear' | 'restart' | 'disabled' | 'restart-by-peer'; interval: number; timeout: number };
  ike: {
    ike_version: 'v1' | 'v2';
    auth_algorithm: string;
    encryption_algorithm: string;
    pfs: string;
    phase1_negotiation_mode: 'main' | 'aggressive';
    lifetime: { units: 'seconds' | 'kilobytes'; value: number };
  };
  ipsec: {
    transform_protocol: 'esp' | 'ah' | 'ah-esp';
    encapsulation_mode: 'tunnel' | 'transport';
    auth_algorithm: string;
    encryption_algorithm: string;
    pfs: string;
    lifetime: { units: 'seconds' | 'kilobytes'; value: number };
  };
}

export interface LogicalModel {
  networks: ModelNetwork[];
  subnets: ModelSubnet[];
  /** Every port of every network this host serves (VM, router, DHCP ports). */
  ports: ModelPort[];
  routers: ModelRouter[];
  floatingips: ModelFloatingIp[];
  security: SecurityPolicy;
  peers: ModelPeer[];
  /** VPN: site-to-site connections on routers (empty when VPNaaS is unused). */
  ipsecConnections?: ModelIpsecConnection[];
}

/** How this agent host is set up (command-line flags), as compile needs it. */
export interface HostConfig {
  /** This host's name, as in binding:host_id and /v2.0/agents. */
  host: string;
  /** physnet → bridge name (--bridge-mapping public:br-ex): flat networks on that physnet use it. */
  bridgeMappings: Record<string, string>;
  /** physnet → uplink interface for VLAN sub-interfaces (compile only on this kernel). */
  vlanInterfaces: Record<string, string>;
  /** Address VXLAN tunnels leave from; null: VXLAN networks stay local to this host. */
  underlayIp: string | null;
  /** Interface that holds the underlay address. */
  underlayInterface: string | null;
  /** Hosts routers and DHCP servers (a network node, or an all-in-one host). */
  networkNode: boolean;
  /** Prepended to every namespace this agent creates, so test runs cannot clash. */
  namespacePrefix: string;
  /** Directory for per-instance state (dnsmasq files, pid files). */
  stateDir: string;
  /**
   * Where ESP runs: 'kernel' (netlink XFRM, hosts whose kernel has ESP) or
   * 'libipsec' (userspace ESP over a TUN device, for kernels without it, like
   * this one). Default libipsec.
   */
  ipsecBackend?: 'kernel' | 'libipsec';
}

/** What compile may read from the host: only what binding depends on. */
export interface HostFacts {
  /** Names of tap devices present on the host (VM ports plugged by a hypervisor or `nucleon sandbox`). */
  taps: string[];
  /** Stable small numbers already given to ports and networks in the live firewall (see plan.ts). */
  portIndexes: Record<string, number>;
  networkZones: Record<string, number>;
}
