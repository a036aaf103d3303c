// Reading what is really on the host: the other half of the diff's input.
//
// Per namespace one `sh -c` script (one namespace switch) prints links,
// addresses, routes, vxlan flood entries and the sysctls the plan names,
// separated by marker lines; a second one, run at the same time, lists the
// chains/sets/maps of every nft table (`list chains; list sets; list maps` in
// one nft process). Never `nft list
// ruleset`: with a 1,000-port firewall it takes ~0.5–1 s, while the chain
// names and comments (which carry a hash of each chain's rules, see nft.ts)
// are enough to know what changed. Namespaces are read concurrently.
import fs from 'node:fs';
import path from 'node:path';
import type { HostPlan } from '../plan.ts';
import { cmdline, isAlive, listNamespaces, readPidFile, shellIn, shq } from './exec.ts';
import { NFT_PREFIX, parseNftListing, type NftTableState } from './nft.ts';
import { DHCP_MARKER, dhcpPidFile, type DhcpMarker } from './dhcp.ts';

export interface LinkState {
  name: string;
  ifindex: number;
  /** linkinfo.info_kind: 'bridge', 'veth', 'vxlan', 'tun', … ('' for plain devices such as lo). */
  kind: string;
  master: string | null;
  mtu: number;
  address: string;
  /** Administratively up (the UP flag; operstate also depends on carrier). */
  up: boolean;
  operstate: string;
  vxlan?: { id: number; local: string | null; dev: string | null; port: number | null };
  /** Veths: the peer's ifindex and, when it lives in another namespace, that namespace's id as seen from here. */
  peer?: { ifindex: number; netnsid: number | null };
}

export interface AddressState { device: string; cidr: string; family: 'inet' | 'inet6'; scope: string }

export interface RouteState {
  family: 4 | 6;
  /** 'default' or a CIDR; host routes as the kernel prints them (no /32). */
  dst: string;
  gateway: string | null;
  dev: string | null;
  type: string;
  protocol: string;
  metric: number;
}

export interface NamespaceState {
  /** '' = the agent's own namespace. */
  name: string;
  exists: boolean;
  links: LinkState[];
  addresses: AddressState[];
  routes: RouteState[];
  /** Only the keys the plan names; value '' when unreadable. */
  sysctls: Record<string, string>;
  /** vxlan device → flood destinations (FDB entries for 00:00:00:00:00:00). */
  floods: Record<string, string[]>;
  /** Only our tables (NFT_PREFIX). */
  nft: NftTableState[];
}

export interface DhcpState {
  dir: string;
  /** From the marker written after the last successful start. */
  marker: DhcpMarker | null;
  pid: number | null;
  /** The pid is alive and is a dnsmasq using this directory. */
  alive: boolean;
  /** …and it runs in the namespace it was started in (by that name). */
  running: boolean;
}

export interface HostState {
  /** Named namespaces that Nucleon owns (prefix + qrouter-/qdhcp-) and that exist. */
  ownedNamespaces: string[];
  /** Keyed by real namespace name ('' = the agent's own). */
  namespaces: Record<string, NamespaceState>;
  /** Keyed by directory: the plan's servers plus any marker found under stateDir. */
  dhcp: Record<string, DhcpState>;
}

export interface ReadOptions {
  /** Where the plan's '' namespace lives: '' = the agent's own (root), or a named netns. */
  hostNamespace: string;
  namespacePrefix: string;
  /** Scanned (two levels deep) for DHCP markers of servers the plan no longer has. */
  stateDir?: string;
}

/** The real namespace name of a plan namespace. */
export const resolveNs = (planNs: string, hostNamespace: string) => (planNs === '' ? hostNamespace : planNs);

/** Namespaces Nucleon owns and may create or delete. */
export const isOwnedNamespace = (name: string, prefix: string) =>
  name.startsWith(`${prefix}qrouter-`) || name.startsWith(`${prefix}qdhcp-`);

const MARK = '@@nucleon@@';

/** The read script for one namespace: sections separated by marker lines. */
export function readScript(sysctlKeys: string[]): string {
  const sys = sysctlKeys
    .map((k) => `printf '%s=%s\\n' ${shq(k)} "$(cat /proc/sys/${shq(k.replace(/\./g, '/'))} 2>/dev/null)"`)
    .join('; ');
  return [
    `echo ${MARK}link; ip -j -d link show`,
    `echo ${MARK}addr; ip -j addr show`,
    `echo ${MARK}route4; ip -j -4 route show table main`,
    `echo ${MARK}route6; ip -j -6 route show table main`,
    // Flood entries only for vxlan devices: a bridge's full FDB can be large.
    `echo ${MARK}fdb; for d in $(ip -o link show type vxlan | sed -n 's/^[0-9]*: \\([^:@]*\\).*/\\1/p'); do echo "@dev $d"; bridge -j fdb show dev "$d"; echo; done`,
    `echo ${MARK}sysctl; ${sys || 'true'}`,
  ].join('\n');
}

/** One nft process for chains (names and comments, no rules), sets and maps with their elements. */
export const NFT_READ_SCRIPT = `echo ${MARK}nft; printf 'list chains\\nlist sets\\nlist maps\\n' | nft -f -`;

export function splitSections(out: string): Record<string, string> {
  const sections: Record<string, string> = {};
  let current = '';
  for (const part of out.split(MARK)) {
    if (!current && part.trim() === '' && !Object.keys(sections).length) continue;
    const nl = part.indexOf('\n');
    current = nl < 0 ? part : part.slice(0, nl);
    sections[current] = nl < 0 ? '' : part.slice(nl + 1);
  }
  return sections;
}

const json = <T>(text: string | undefined): T[] => {
  const t = (text ?? '').trim();
  return t ? (JSON.parse(t) as T[]) : [];
};

interface IpLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  master?: string;
  operstate: string;
  address?: string;
  link_index?: number;
  link_netnsid?: number;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

export function parseLinks(text: string | undefined): LinkState[] {
  return json<IpLink>(text).map((l) => {
    const kind = l.linkinfo?.info_kind ?? '';
    const link: LinkState = {
      name: l.ifname,
      ifindex: l.ifindex,
      kind,
      master: l.master ?? null,
      mtu: l.mtu,
      address: (l.address ?? '').toLowerCase(),
      up: l.flags.includes('UP'),
      operstate: l.operstate,
    };
    if (kind === 'vxlan') {
      const d = l.linkinfo?.info_data ?? {};
      link.vxlan = {
        id: Number(d.id),
        local: typeof d.local === 'string' ? d.local : null,
        dev: typeof d.link === 'string' ? d.link : null,
        port: typeof d.port === 'number' ? d.port : null,
      };
    }
    if (kind === 'veth' && l.link_index !== undefined) {
      link.peer = { ifindex: l.link_index, netnsid: l.link_netnsid ?? null };
    }
    return link;
  });
}

interface IpAddr { ifname: string; addr_info: Array<{ family: string; local: string; prefixlen: number; scope: string }> }

export function parseAddresses(text: string | undefined): AddressState[] {
  const out: AddressState[] = [];
  for (const l of json<IpAddr>(text)) {
    for (const a of l.addr_info ?? []) {
      if (a.family !== 'inet' && a.family !== 'inet6') continue;
      out.push({ device: l.ifname, cidr: `${a.local}/${a.prefixlen}`, family: a.family, scope: a.scope });
    }
  }
  return out;
}

interface IpRoute { dst: string; gateway?: string; dev?: string; type?: string; protocol?: string; metric?: number }

export function parseRoutes(text: string | undefined, family: 4 | 6): RouteState[] {
  return json<IpRoute>(text).map((r) => ({
    family,
    dst: r.dst,
    gateway: r.gateway ?? null,
    dev: r.dev ?? null,
    type: r.type ?? 'unicast',
    protocol: r.protocol ?? 'boot',
    metric: r.metric ?? (family === 6 ? 1024 : 0),
  }));
}

/** "@dev vxlan-5\n[…json…]" blocks → flood destinations per device. */
export function parseFloods(text: string | undefined): Record<string, string[]> {
  const floods: Record<string, string[]> = {};
  for (const block of (text ?? '').split('@dev ').slice(1)) {
    const nl = block.indexOf('\n');
    const dev = block.slice(0, nl).trim();
    const entries = json<{ mac: string; dst?: string }>(block.slice(nl + 1));
    floods[dev] = entries.filter((e) => e.mac === '00:00:00:00:00:00' && e.dst).map((e) => e.dst!).sort();
  }
  return floods;
}

export function parseSysctls(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of (text ?? '').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1).trim().replace(/\s+/g, ' ');
  }
  return out;
}

export const emptyNamespace = (name: string): NamespaceState =>
  ({ name, exists: false, links: [], addresses: [], routes: [], sysctls: {}, floods: {}, nft: [] });

export async function readNamespace(name: string, sysctlKeys: string[]): Promise<NamespaceState> {
  // Two processes side by side: listing a big firewall (~40 ms) need not wait for iproute2.
  const [r, n] = await Promise.all([shellIn(name, readScript(sysctlKeys)), shellIn(name, NFT_READ_SCRIPT)]);
  for (const x of [r, n]) {
    if (x.code !== 0) throw new Error(`reading namespace ${name || '(host)'} failed: ${x.stderr.trim()}`);
  }
  const s = { ...splitSections(r.stdout), ...splitSections(n.stdout) };
  return {
    name,
    exists: true,
    links: parseLinks(s.link),
    addresses: parseAddresses(s.addr),
    routes: [...parseRoutes(s.route4, 4), ...parseRoutes(s.route6, 6)],
    sysctls: parseSysctls(s.sysctl),
    floods: parseFloods(s.fdb),
    nft: parseNftListing(s.nft ?? '').filter((t) => t.name.startsWith(NFT_PREFIX)),
  };
}

export function readDhcp(dir: string): DhcpState {
  let marker: DhcpMarker | null = null;
  try {
    marker = JSON.parse(fs.readFileSync(path.join(dir, DHCP_MARKER), 'utf8')) as DhcpMarker;
  } catch { /* never started, or removed by hand */ }
  const pid = readPidFile(marker?.pidFile ?? dhcpPidFile(dir, []));
  // A pid file can outlive its process and the pid be reused: check that it
  // is a dnsmasq of this directory, and that it still runs in the namespace
  // of that name (a namespace deleted by hand leaves its daemons running in
  // an anonymous one; a recreated namespace is a different one).
  const alive = pid !== null && isAlive(pid) && /dnsmasq/.test(cmdline(pid)) && cmdline(pid).includes(dir);
  const running = alive && marker !== null && sameNetns(pid!, marker.namespace);
  return { dir, marker, pid, alive, running };
}

function sameNetns(pid: number, ns: string): boolean {
  try {
    const want = fs.statSync(ns ? `/run/netns/${ns}` : '/proc/self/ns/net');
    const have = fs.statSync(`/proc/${pid}/ns/net`);
    return want.ino === have.ino && want.dev === have.dev;
  } catch {
    return false;
  }
}

/** Directories under stateDir (one or two levels down) holding a DHCP marker. */
export function findDhcpDirs(stateDir: string): string[] {
  const found: string[] = [];
  const visit = (dir: string, depth: number) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    if (entries.some((e) => e.isFile() && e.name === DHCP_MARKER)) found.push(dir);
    if (depth < 2) for (const e of entries) if (e.isDirectory()) visit(path.join(dir, e.name), depth + 1);
  };
  visit(stateDir, 0);
  return found;
}

/**
 * Reads what the diff needs: the host namespace, every namespace the plan
 * names (absent ones as exists: false), the owned namespaces that exist (only
 * their names: stale ones are deleted whole), and the DHCP servers.
 */
export async function readHostState(plan: HostPlan, opts: ReadOptions): Promise<HostState> {
  const present = await listNamespaces();
  const presentSet = new Set(present);
  const ownedNamespaces = present.filter((n) => isOwnedNamespace(n, opts.namespacePrefix));

  const wanted = new Map<string, Set<string>>();
  wanted.set(opts.hostNamespace, new Set());
  for (const ns of plan.namespaces) {
    const name = resolveNs(ns.name, opts.hostNamespace);
    const keys = wanted.get(name) ?? new Set<string>();
    for (const k of Object.keys(ns.sysctls)) keys.add(k);
    wanted.set(name, keys);
  }
  // Veth peers can live in a namespace that has no plan entry of its own.
  for (const ns of plan.namespaces) {
    for (const v of ns.veths) {
      const peerNs = resolveNs(v.peer.namespace, opts.hostNamespace);
      if (!wanted.has(peerNs)) wanted.set(peerNs, new Set());
    }
  }

  const namespaces: Record<string, NamespaceState> = {};
  await Promise.all([...wanted].map(async ([name, keys]) => {
    if (name !== '' && !presentSet.has(name)) {
      namespaces[name] = emptyNamespace(name);
      return;
    }
    namespaces[name] = await readNamespace(name, [...keys].sort());
  }));

  const dirs = new Set(plan.dhcp.map((d) => d.dir));
  if (opts.stateDir) for (const d of findDhcpDirs(opts.stateDir)) dirs.add(d);
  const dhcp: Record<string, DhcpState> = {};
  for (const d of dirs) dhcp[d] = readDhcp(d);

  return { ownedNamespaces, namespaces, dhcp };
}
