// The compile step's output and the apply step's input: everything one host
// should look like, as plain data that can be printed (`nucleon agent
// --print-plan`), compared (incremental compile == full compile) and diffed
// against what is really on the host.
//
// Naming (Linux interface names are at most 15 characters):
//   network bridge   brq<network id, first 11 chars>   (flat networks: the mapped bridge, e.g. br-ex)
//   VXLAN device     vxlan-<vni>
//   VLAN device      <uplink>.<vid>                    (compile only: this kernel has no VLAN devices)
//   port, host side  tap<port id, first 11 chars>      (VM taps, and the host end of every veth)
//   router leg       qr-<port id, 11> / qg-<port id, 11> inside qrouter-<router id>
//   DHCP leg         ns-<port id, 11> inside qdhcp-<network id>
// Namespaces carry HostConfig.namespacePrefix in front.

export interface Bridge { name: string; mtu: number }

export interface VxlanLink {
  name: string;
  vni: number;
  bridge: string;
  mtu: number;
  local: string;
  device: string | null;
  /** Underlay addresses of the peers to flood to (head-end replication, FDB 00:00:00:00:00:00). */
  remotes: string[];
}

export interface VlanLink { name: string; parent: string; vid: number; bridge: string }

/** A veth pair created from the namespace that holds `name`; `peer` goes to another namespace. */
export interface Veth {
  name: string;
  mac: string;
  mtu: number;
  peer: { name: string; namespace: string };
}

/** An existing device (a VM tap, the host end of a veth) enslaved to a bridge and up. */
export interface Plug { device: string; bridge: string; mtu: number }

export interface Address { device: string; /** address/prefixlen */ cidr: string }

export interface Route {
  /** CIDR or 'default'. */
  destination: string;
  via?: string;
  device?: string;
  /** 'unreachable': nothing to that destination leaves in clear (IPsec, later). */
  type?: 'unicast' | 'unreachable';
  metric?: number;
}

export interface NftTable {
  family: 'bridge' | 'inet' | 'ip' | 'ip6';
  name: string;
  sets: Record<string, { type: string; flags?: string[]; elements: string[] }>;
  maps: Record<string, { type: string; elements: Record<string, string> }>;
  /**
   * Base chains have a hook; others are jumped to. The names of per-port
   * chains embed a short hash of their rules, so a changed chain is a new name
   * and the diff against the host needs only `nft list chains`.
   */
  chains: Record<string, { hook?: { type: string; hook: string; priority: string; policy: 'accept' | 'drop' }; rules: string[] }>;
}

export interface NamespacePlan {
  /** '' for the host's own namespace (the root one, or --host-namespace). */
  name: string;
  kind: 'host' | 'router' | 'dhcp';
  /** Router or network id, for routers and DHCP. */
  owner?: string;
  bridges: Bridge[];
  vxlans: VxlanLink[];
  vlans: VlanLink[];
  veths: Veth[];
  plugs: Plug[];
  addresses: Address[];
  routes: Route[];
  sysctls: Record<string, string>;
  /** Tables owned by Nucleon in this namespace (router NAT, the host's firewall). */
  nft: NftTable[];
}

/** Per port on this host's firewall: what apply needs to cut connections when rules change. */
export interface FirewallPort {
  port_id: string;
  device: string;
  index: number;
  zone: number;
  addresses: string[];
}

export interface DhcpServer {
  network_id: string;
  namespace: string;
  interface: string;
  /** Per-instance directory under HostConfig.stateDir. */
  dir: string;
  /** File name → contents (hosts, opts, addn_hosts), written 0600 into dir. */
  files: Record<string, string>;
  /** dnsmasq arguments (pid, lease and log files inside dir). */
  args: string[];
  /** Changes whenever files or args do: dnsmasq is restarted then (SIGHUP crashes it, see the data-plane notes). */
  hash: string;
}

export interface PortBinding {
  port_id: string;
  vif_type: 'bridge' | 'binding_failed';
  /** Wired and up: reported as status ACTIVE. */
  active: boolean;
}

/** One strongSwan connection (a vici load-conn message body) and its PSK secret. */
export interface IpsecConnectionPlan {
  /** The ipsec-site-connection id; also the vici connection name. */
  id: string;
  /** The vici `load-conn` message: { <id>: { version, local_addrs, remote_addrs, proposals, local, remote, children, ... } }. */
  conn: Record<string, unknown>;
  /** The vici `load-shared` message: { id, type: 'IKE', data, owners }. Secret: never logged or printed. */
  secret: { id: string; type: 'IKE'; data: string; owners: string[] };
  /** Re-initiate when down (not for response-only connections). */
  initiate: boolean;
  /** Child SA name to initiate and to read state from. */
  child: string;
}

/** One charon per router namespace that hosts a VPN service. */
export interface IpsecInstance {
  router_id: string;
  namespace: string;
  /** Per-instance directory: strongswan.conf, the vici socket, charon.log (0700). */
  dir: string;
  /** strongswan.conf contents (no secrets: those go over vici). */
  strongswanConf: string;
  connections: IpsecConnectionPlan[];
}

export interface HostPlan {
  host: string;
  namespaces: NamespacePlan[];
  firewall: FirewallPort[];
  dhcp: DhcpServer[];
  bindings: PortBinding[];
  /** Routers and floating IPs this host serves (reported ACTIVE once applied). */
  routers: string[];
  floatingips: string[];
  /** Small stable numbers handed out by this compile (kept by the next one). */
  portIndexes: Record<string, number>;
  networkZones: Record<string, number>;
  /** strongSwan instances (VPNaaS); absent or empty without VPN services. */
  ipsec?: IpsecInstance[];
}

/** The host-side device name of a port. */
export const tapName = (portId: string) => `tap${portId.slice(0, 11)}`;
export const bridgeName = (networkId: string) => `brq${networkId.slice(0, 11)}`;
export const routerNamespace = (prefix: string, routerId: string) => `${prefix}qrouter-${routerId}`;
export const dhcpNamespace = (prefix: string, networkId: string) => `${prefix}qdhcp-${networkId}`;
