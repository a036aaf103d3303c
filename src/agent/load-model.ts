// Reads the logical model an agent compiles from. It runs on every pass (on
// start, on every change, on every resync), so it is one query per table,
// whatever the number of ports, plus loadSecurityPolicy's few queries, all in
// one read transaction: a pass never sees half of a concurrent change (a port
// whose subnet is not loaded yet), and what it misses the next pass picks up.
//
// The model is the whole cloud, not only this host's share: which networks a
// compute node serves depends on which taps are plugged in (HostFacts), and
// compile is the one place that decides.
import type { Db, Store, Tx } from '../store/database.ts';
import { loadSecurityPolicy } from '../services/security-policy.ts';
import { aliveAgents } from '../services/agents.ts';
import { parseIp, ROUTER_INTERFACE_OWNERS } from '../services/ipam.ts';
import type {
  HostConfig, LogicalModel, ModelFloatingIp, ModelIpsecConnection, ModelNetwork, ModelPeer, ModelPort, ModelRouter, ModelSubnet,
} from './model.ts';
import { loadIpsecConnections, type DecryptPsk } from './load-vpn.ts';

export interface LoadModelOptions {
  /**
   * Opens sealed VPN PSKs. Without it the model has no IPsec connections (an
   * agent that cannot read the deployment's secret key runs no VPN).
   */
  decryptPsk?: DecryptPsk;
  /** Told the ids of connections whose PSK could not be opened (never the value). */
  onPskError?: (connectionIds: string[]) => void;
}

export async function loadModel(store: Store, config: HostConfig, opts: LoadModelOptions = {}): Promise<LogicalModel> {
  return inSnapshot(store, async (db) => {
    const model = await readModel(db, config);
    if (opts.decryptPsk) model.ipsecConnections = await readIpsec(db, opts.decryptPsk, opts.onPskError);
    return model;
  });
}

/**
 * The VPN connections, minus those whose PSK does not open (sealed with another
 * key): one bad row must not fail the whole pass, and a connection with no
 * usable key could only fail authentication.
 */
async function readIpsec(db: Tx, decrypt: DecryptPsk, onPskError?: (ids: string[]) => void): Promise<ModelIpsecConnection[]> {
  let bad = false;
  const conns = await loadIpsecConnections(db, (sealed) => {
    try {
      return decrypt(sealed);
    } catch {
      bad = true;
      return '';
    }
  });
  if (!bad) return conns;
  onPskError?.(conns.filter((c) => c.psk === '').map((c) => c.id));
  return conns.filter((c) => c.psk !== '');
}

/**
 * Runs the reads in one transaction: REPEATABLE READ on PostgreSQL (one
 * snapshot for every statement); on SQLite a transaction is a snapshot already.
 */
async function inSnapshot<T>(store: Store, fn: (db: Tx) => Promise<T>): Promise<T> {
  let t = store.db.transaction();
  if (store.dialect === 'postgres') t = t.setIsolationLevel('repeatable read');
  return t.execute(fn);
}

async function readModel(db: Db | Tx, config: HostConfig): Promise<LogicalModel> {
  // Sequential on purpose: one transaction is one connection, which runs one statement at a time anyway.
  const networks = await readNetworks(db);
  const subnets = await readSubnets(db);
  const ports = await readPorts(db, subnets);
  const routers = await readRouters(db, ports);
  const floatingips = await readFloatingIps(db);
  const security = await loadSecurityPolicy(db);
  const peers = await readPeers(db, config.host);
  return { networks, subnets, ports, routers, floatingips, security, peers };
}

async function readNetworks(db: Db | Tx): Promise<ModelNetwork[]> {
  const rows = await db.selectFrom('networks')
    .select(['id', 'project_id', 'admin_state_up', 'mtu', 'network_type', 'physical_network', 'segmentation_id', 'router_external'])
    .orderBy('id').execute();
  return rows.map((n) => ({
    id: n.id,
    project_id: n.project_id,
    admin_state_up: Boolean(n.admin_state_up),
    mtu: n.mtu,
    network_type: n.network_type as ModelNetwork['network_type'],
    physical_network: n.physical_network,
    segmentation_id: n.segmentation_id,
    router_external: Boolean(n.router_external),
  }));
}

/** Subnets in creation order, the order a port's addresses are listed in. */
async function readSubnets(db: Db | Tx): Promise<ModelSubnet[]> {
  const rows = await db.selectFrom('subnets')
    .select(['id', 'network_id', 'ip_version', 'cidr', 'gateway_ip', 'enable_dhcp', 'dns_nameservers', 'host_routes'])
    .orderBy('created_at').orderBy('ip_version').orderBy('id').execute();
  return rows.map((s) => ({
    id: s.id,
    network_id: s.network_id,
    ip_version: s.ip_version as 4 | 6,
    cidr: s.cidr,
    gateway_ip: s.gateway_ip,
    enable_dhcp: Boolean(s.enable_dhcp),
    dns_nameservers: JSON.parse(s.dns_nameservers),
    host_routes: JSON.parse(s.host_routes),
  }));
}

/** Ports with their addresses and groups: three queries for any number of ports. */
async function readPorts(db: Db | Tx, subnets: ModelSubnet[]): Promise<ModelPort[]> {
  const rows = await db.selectFrom('ports')
    .select(['id', 'project_id', 'network_id', 'mac_address', 'admin_state_up', 'device_owner', 'device_id',
      'binding_host_id', 'port_security_enabled', 'allowed_address_pairs', 'extra_dhcp_opts'])
    .orderBy('id').execute();
  const allocations = await db.selectFrom('ip_allocations').select(['port_id', 'subnet_id', 'ip_address']).execute();
  const memberships = await db.selectFrom('port_security_groups').select(['port_id', 'security_group_id'])
    .orderBy('security_group_id').execute();

  const subnetOrder = new Map(subnets.map((s, i) => [s.id, i]));
  const ips = groupBy(allocations, (a) => a.port_id);
  const groups = groupBy(memberships, (m) => m.port_id);
  return rows.map((p) => ({
    id: p.id,
    project_id: p.project_id,
    network_id: p.network_id,
    mac_address: p.mac_address,
    admin_state_up: Boolean(p.admin_state_up),
    device_owner: p.device_owner,
    device_id: p.device_id,
    binding_host_id: p.binding_host_id,
    fixed_ips: (ips.get(p.id) ?? [])
      .sort((a, b) => compareAddresses(subnetOrder, a, b))
      .map((a) => ({ subnet_id: a.subnet_id, ip_address: a.ip_address })),
    port_security_enabled: Boolean(p.port_security_enabled),
    allowed_address_pairs: JSON.parse(p.allowed_address_pairs),
    security_groups: (groups.get(p.id) ?? []).map((m) => m.security_group_id),
    extra_dhcp_opts: JSON.parse(p.extra_dhcp_opts),
  }));
}

/** A port's addresses as the API lists them: by subnet (creation order), then numerically. */
function compareAddresses(
  subnetOrder: Map<string, number>,
  a: { subnet_id: string; ip_address: string },
  b: { subnet_id: string; ip_address: string },
): number {
  if (a.subnet_id !== b.subnet_id) return (subnetOrder.get(a.subnet_id) ?? 0) - (subnetOrder.get(b.subnet_id) ?? 0);
  const x = parseIp(a.ip_address)?.value ?? 0n;
  const y = parseIp(b.ip_address)?.value ?? 0n;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Routers with their interface ports, found among the ports already read (device_id = router id). */
async function readRouters(db: Db | Tx, ports: ModelPort[]): Promise<ModelRouter[]> {
  const rows = await db.selectFrom('routers')
    .select(['id', 'project_id', 'admin_state_up', 'enable_snat', 'gw_port_id', 'routes']).orderBy('id').execute();
  const interfaces = groupBy(ports.filter((p) => ROUTER_INTERFACE_OWNERS.has(p.device_owner)), (p) => p.device_id);
  return rows.map((r) => ({
    id: r.id,
    project_id: r.project_id,
    admin_state_up: Boolean(r.admin_state_up),
    enable_snat: Boolean(r.enable_snat),
    gw_port_id: r.gw_port_id,
    interface_port_ids: (interfaces.get(r.id) ?? []).map((p) => p.id),
    routes: JSON.parse(r.routes),
  }));
}

async function readFloatingIps(db: Db | Tx): Promise<ModelFloatingIp[]> {
  return db.selectFrom('floatingips')
    .select(['id', 'floating_ip_address', 'floating_network_id', 'router_id', 'port_id', 'fixed_ip_address'])
    .orderBy('id').execute();
}

/**
 * Other hosts whose agents are alive, have an underlay address and a data
 * plane (a plan-only agent builds no tunnel end): where VXLAN floods go.
 */
async function readPeers(db: Db | Tx, host: string): Promise<ModelPeer[]> {
  const peers: ModelPeer[] = [];
  for (const a of await aliveAgents(db)) {
    if (a.host === host) continue;
    const c = JSON.parse(a.configurations) as { underlay_ip?: unknown; data_plane?: unknown };
    if (typeof c.underlay_ip === 'string' && c.underlay_ip && c.data_plane !== false) peers.push({ host: a.host, underlay_ip: c.underlay_ip });
  }
  return peers;
}

function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item); else out.set(k, [item]);
  }
  return out;
}
