// The pure core of apply: plan + host state → ordered steps. No I/O here, so
// every decision can be unit-tested without root.
//
// What Nucleon owns, and so may change or delete:
//  - namespaces named <prefix>qrouter-* / <prefix>qdhcp-* (created when the
//    plan names them, deleted when it no longer does);
//  - in a namespace, links named brq*, vxlan-*, qr-*, qg-*, ns-* (created,
//    fixed, deleted when stale); bridges the plan names under other names
//    (flat mappings such as br-ex: created when missing, never deleted);
//    tap* devices are only plugged and unplugged, never deleted (VM taps
//    belong to the hypervisor or the sandbox, and the tap end of one of our
//    veths goes away by itself when its qr-/qg-/ns- partner is deleted);
//  - addresses and routes on devices with our names (never on a flat bridge
//    such as br-ex: its address, if any, is the administrator's), and
//    unreachable routes in our namespaces;
//  - nft tables named nucleon_*; dnsmasq processes started from the plan's
//    DHCP directories.
// Ordering: namespaces → bridges → vxlan/veth → sysctls → nft (+ conntrack)
// → plugs/mtu/up and flood entries → addresses → routes → DHCP → stale things
// (unplug, addresses, routes, flood entries, links) → stale DHCP → stale
// namespaces. The firewall goes in before anything is plugged (see PHASES).
// Re-diffing an applied plan yields no steps.
import type { DhcpServer, HostPlan, NamespacePlan, Route } from '../plan.ts';
import type { HostState, LinkState, NamespaceState, RouteState } from './host-state.ts';
import { emptyNamespace, isOwnedNamespace, resolveNs } from './host-state.ts';
import { conntrackCuts, countStatements, diffTables } from './nft.ts';

export type StepKind =
  | 'netns.add' // args: [name]
  | 'ip' //        args: one iproute2 command (`ip -n NS -batch -` line)
  | 'bridge' //    args: one `bridge` command (FDB flood entries)
  | 'sysctl' //    args: [key, value]
  | 'nft' //       args: the statements of one `nft -f -` transaction
  | 'conntrack' // args: one `conntrack` argument list (`-D -w Z -d A`)
  | 'dhcp.start' //args: [network_id, dir]; restarts when running
  | 'dhcp.stop' // args: [dir]
  | 'netns.del'; // args: [name]

export interface Step {
  /** Real namespace name ('' = the agent's own). */
  ns: string;
  kind: StepKind;
  args: string[];
  reason: string;
  /** Ordering bucket (see PHASES). */
  phase: number;
  /** dhcp.start: the server; dhcp.*: the pid to stop first. */
  dhcp?: { server?: DhcpServer; pid: number | null };
  /** nft: the statement count, for logs and tests. */
  statements?: number;
}

// Filtering before forwarding: sysctls (bridge-nf-call-*, ip_forward) and nft
// tables (they name devices by string, so they need no device to exist) come
// before any device is plugged or brought up, so a new VM port never passes a
// frame that its rules would drop. conntrack steps share the nft phase, right
// after their namespace's transaction (one namespace switch for both).
export const PHASES = ['namespaces', 'bridges', 'links', 'sysctls', 'nft', 'plug', 'addresses', 'routes', 'dhcp', 'stale', 'stale-dhcp', 'stale-namespaces'] as const;
const P = Object.fromEntries(PHASES.map((p, i) => [p, i])) as Record<(typeof PHASES)[number], number>;

export interface DiffOptions {
  /** Where the plan's '' namespace lives ('' = the agent's own namespace). */
  hostNamespace: string;
  namespacePrefix: string;
  /**
   * How `ip link add … peer … netns X` names the agent's own namespace when
   * a veth peer goes there from a named one (it has no name): a pid living in
   * it. Default: this process.
   */
  ownNetnsRef?: string;
}

export interface DiffResult {
  steps: Step[];
  /** Things the diff could not do and why (a VM tap not plugged in yet, a name taken by a foreign device). */
  notes: string[];
}

/** Links whose names say Nucleon made them. */
export const OWNED_LINK = /^(brq|vxlan-|qr-|qg-|ns-|tap)/;
/** Of those, the ones apply may delete (see the header about taps). */
const DELETABLE_LINK = /^(brq|vxlan-|qr-|qg-|ns-)/;
const VXLAN_PORT = 4789;
const FLOOD_MAC = '00:00:00:00:00:00';

/** What one device should look like (merged from bridges, vxlans, veths and plugs). */
interface DesiredLink {
  name: string;
  master?: string;
  mtu?: number;
  mac?: string;
}

export function diffHost(plan: HostPlan, state: HostState, opts: DiffOptions): DiffResult {
  const steps: Step[] = [];
  const notes: string[] = [];
  const ownRef = opts.ownNetnsRef ?? String(process.pid);
  const real = (ns: string) => resolveNs(ns, opts.hostNamespace);
  const nsState = (ns: string): NamespaceState => state.namespaces[ns] ?? emptyNamespace(ns);
  const step = (s: Omit<Step, 'phase'>, phase: number) => steps.push({ ...s, phase });

  // The plan per real namespace; the host namespace is always planned (empty
  // when the plan lists nothing for it), so stale things there go too.
  const plans = new Map<string, NamespacePlan>();
  for (const ns of plan.namespaces) plans.set(real(ns.name), ns);
  if (!plans.has(opts.hostNamespace)) {
    plans.set(opts.hostNamespace, { name: '', kind: 'host', bridges: [], vxlans: [], vlans: [], veths: [], plugs: [], addresses: [], routes: [], sysctls: {}, nft: [] });
  }

  // Namespaces first: everything else happens inside them.
  for (const [name, ns] of plans) {
    if (name !== opts.hostNamespace && !nsState(name).exists) {
      step({ ns: name, kind: 'netns.add', args: [name], reason: `${ns.kind} namespace missing` }, P.namespaces);
    }
  }

  // Desired links per real namespace (a veth's peer belongs to another namespace's list).
  const desired = new Map<string, Map<string, DesiredLink>>();
  const want = (ns: string, d: DesiredLink) => {
    const m = desired.get(ns) ?? new Map<string, DesiredLink>();
    desired.set(ns, m);
    const prev = m.get(d.name);
    m.set(d.name, {
      name: d.name,
      master: d.master ?? prev?.master,
      mtu: d.mtu ?? prev?.mtu,
      mac: d.mac ?? prev?.mac,
    });
  };
  // Links (re)created in this pass: their state is to be ignored.
  const created = new Map<string, Set<string>>();
  const markCreated = (ns: string, name: string) => {
    const s = created.get(ns) ?? new Set<string>();
    created.set(ns, s);
    s.add(name);
  };
  const isCreated = (ns: string, name: string) => created.get(ns)?.has(name) ?? false;
  const linkOf = (ns: string, name: string): LinkState | undefined =>
    (isCreated(ns, name) ? undefined : nsState(ns).links.find((l) => l.name === name));

  for (const [name, ns] of plans) {
    const st = nsState(name);
    const links = new Map(st.links.map((l) => [l.name, l]));

    for (const b of ns.bridges) {
      want(name, { name: b.name, mtu: b.mtu });
      const l = links.get(b.name);
      if (l && l.kind === 'bridge') continue;
      if (l) {
        if (!DELETABLE_LINK.test(b.name)) {
          notes.push(`${label(name)}: ${b.name} exists but is a ${l.kind || 'plain'} device, not a bridge; left alone`);
          continue;
        }
        step({ ns: name, kind: 'ip', args: ['link', 'del', b.name], reason: `${b.name} is a ${l.kind || 'plain'} device, not a bridge` }, P.bridges);
      }
      markCreated(name, b.name);
      step({ ns: name, kind: 'ip', args: ['link', 'add', b.name, 'mtu', String(b.mtu), 'type', 'bridge'], reason: `bridge ${b.name} missing` }, P.bridges);
    }

    for (const x of ns.vxlans) {
      want(name, { name: x.name, master: x.bridge, mtu: x.mtu });
      const l = links.get(x.name);
      const ok = l?.kind === 'vxlan' && l.vxlan?.id === x.vni && (l.vxlan.local ?? null) === x.local && (l.vxlan.dev ?? null) === (x.device ?? null);
      if (!ok) {
        if (l) step({ ns: name, kind: 'ip', args: ['link', 'del', x.name], reason: `${x.name} is not vxlan ${x.vni} from ${x.local}` }, P.links);
        markCreated(name, x.name);
        const args = ['link', 'add', x.name, 'mtu', String(x.mtu), 'type', 'vxlan', 'id', String(x.vni), 'local', x.local];
        if (x.device) args.push('dev', x.device);
        args.push('dstport', String(VXLAN_PORT));
        step({ ns: name, kind: 'ip', args, reason: `vxlan ${x.vni} missing` }, P.links);
      }
      // Head-end replication: one all-zero FDB entry per remote.
      const have = new Set(ok ? st.floods[x.name] ?? [] : []);
      const wantRemotes = new Set(x.remotes);
      for (const r of x.remotes) {
        if (!have.has(r)) step({ ns: name, kind: 'bridge', args: ['fdb', 'append', FLOOD_MAC, 'dev', x.name, 'dst', r], reason: `flood to ${r} missing` }, P.plug);
      }
      for (const r of have) {
        if (!wantRemotes.has(r)) step({ ns: name, kind: 'bridge', args: ['fdb', 'del', FLOOD_MAC, 'dev', x.name, 'dst', r], reason: `peer ${r} gone` }, P.stale);
      }
    }

    for (const v of ns.veths) {
      const peerNs = real(v.peer.namespace);
      want(name, { name: v.name, mtu: v.mtu, mac: v.mac.toLowerCase() });
      want(peerNs, { name: v.peer.name, mtu: v.mtu });
      const l = links.get(v.name);
      const pl = nsState(peerNs).links.find((x) => x.name === v.peer.name);
      // Partners: each end's link_index is the other's ifindex (in its own namespace).
      const paired = l?.kind === 'veth' && pl?.kind === 'veth' && l.peer?.ifindex === pl.ifindex && pl.peer?.ifindex === l.ifindex
        && (peerNs === name) === (l.peer?.netnsid === null);
      if (paired) continue;
      if (pl && !(l && l.kind === 'veth' && l.peer?.ifindex === pl.ifindex)) {
        // The peer's name is taken by a device that is not our partner (a VM's tap, say).
        notes.push(`${label(peerNs)}: ${v.peer.name} exists and is not the peer of ${v.name} in ${label(name)}; veth not created`);
        continue;
      }
      if (l) step({ ns: name, kind: 'ip', args: ['link', 'del', v.name], reason: `${v.name} is not a veth paired with ${v.peer.name}` }, P.links);
      markCreated(name, v.name);
      markCreated(peerNs, v.peer.name);
      const args = ['link', 'add', v.name, 'mtu', String(v.mtu), 'address', v.mac.toLowerCase(), 'type', 'veth', 'peer', 'name', v.peer.name, 'mtu', String(v.mtu)];
      if (peerNs !== name) args.push('netns', peerNs === '' ? ownRef : peerNs);
      step({ ns: name, kind: 'ip', args, reason: `veth ${v.name} ↔ ${label(peerNs)}/${v.peer.name} missing` }, P.links);
    }

    for (const p of ns.plugs) want(name, { name: p.device, master: p.bridge, mtu: p.mtu });
  }

  // Plug / mtu / mac / up, one `link set` per device that needs anything.
  for (const [name] of plans) if (!desired.has(name)) desired.set(name, new Map());
  for (const [name, devs] of desired) {
    const ns = plans.get(name);
    if (ns && ns.kind !== 'host') {
      const lo = linkOf(name, 'lo');
      if (!lo?.up) step({ ns: name, kind: 'ip', args: ['link', 'set', 'dev', 'lo', 'up'], reason: 'loopback down' }, P.plug);
    }
    for (const d of devs.values()) {
      const l = linkOf(name, d.name);
      if (!l && !isCreated(name, d.name)) {
        notes.push(`${label(name)}: ${d.name} not present yet; not plugged`);
        continue;
      }
      const args: string[] = [];
      const why: string[] = [];
      if (d.master !== undefined && l?.master !== d.master) {
        args.push('master', d.master);
        why.push(l ? `master ${l.master ?? 'none'} → ${d.master}` : `plug into ${d.master}`);
      }
      if (d.mtu !== undefined && l && l.mtu !== d.mtu) {
        args.push('mtu', String(d.mtu));
        why.push(`mtu ${l.mtu} → ${d.mtu}`);
      }
      if (d.mac && l && l.address !== d.mac) {
        args.push('address', d.mac);
        why.push(`mac ${l.address} → ${d.mac}`);
      }
      if (!l?.up) {
        args.push('up');
        why.push(l ? 'down' : 'new');
      }
      if (args.length) step({ ns: name, kind: 'ip', args: ['link', 'set', 'dev', d.name, ...args], reason: why.join(', ') }, P.plug);
    }
  }

  // Links to delete, per namespace: ours by name, and neither planned nor made in this pass.
  const doomedLinks = new Map<string, Set<string>>();
  for (const [name] of plans) {
    const devs = desired.get(name)!;
    doomedLinks.set(name, new Set(nsState(name).links
      .filter((l) => !isCreated(name, l.name) && DELETABLE_LINK.test(l.name) && !devs.has(l.name))
      .map((l) => l.name)));
  }
  // Is this veth end's partner (ifindexes point at each other) one of the doomed links?
  const partnerDoomed = (l: LinkState) => l.peer !== undefined && [...doomedLinks].some(([ns, names]) =>
    nsState(ns).links.some((d) => names.has(d.name) && d.peer?.ifindex === l.ifindex && l.peer!.ifindex === d.ifindex));

  // Addresses, routes, sysctls, nft per namespace; then what is stale in it.
  for (const [name, ns] of plans) {
    const st = nsState(name);
    const devs = desired.get(name)!;
    const present = (dev: string) => isCreated(name, dev) || st.links.some((l) => l.name === dev);
    const owned = isOwnedNamespace(name, opts.namespacePrefix);

    const wantAddrs = new Map(ns.addresses.map((a) => [`${normCidr(a.cidr)} ${a.device}`, a]));
    const haveAddrs = st.addresses.filter((a) => !isCreated(name, a.device) && !(a.family === 'inet6' && a.scope === 'link') && a.device !== 'lo');
    const haveKeys = new Set(haveAddrs.map((a) => `${normCidr(a.cidr)} ${a.device}`));
    for (const [key, a] of wantAddrs) {
      if (haveKeys.has(key)) continue;
      if (!present(a.device)) {
        notes.push(`${label(name)}: ${a.device} not present; ${a.cidr} not added`);
        continue;
      }
      step({ ns: name, kind: 'ip', args: ['addr', 'add', a.cidr, 'dev', a.device], reason: 'address missing' }, P.addresses);
    }

    const routeKey = (r: Route) => JSON.stringify(r);
    const matched = new Set<RouteState>();
    for (const r of ns.routes) {
      const m = st.routes.find((s) => routeMatches(r, s) && !(s.dev && isCreated(name, s.dev)));
      if (m) {
        matched.add(m);
        continue;
      }
      if (r.device && !present(r.device)) {
        notes.push(`${label(name)}: ${r.device} not present; route ${r.destination} not added`);
        continue;
      }
      step({ ns: name, kind: 'ip', args: routeArgs('replace', r), reason: `route ${routeKey(r)} missing` }, P.routes);
    }

    for (const [k, v] of Object.entries(ns.sysctls)) {
      if ((st.sysctls[k] ?? '').replace(/\s+/g, ' ') !== String(v).trim().replace(/\s+/g, ' ')) {
        step({ ns: name, kind: 'sysctl', args: [k, String(v)], reason: `was ${JSON.stringify(st.sysctls[k] ?? '')}` }, P.sysctls);
      }
    }

    const tableDiffs = diffTables(ns.nft, st.nft);
    if (tableDiffs.length) {
      const lines = tableDiffs.flatMap((d) => d.lines);
      const reason = tableDiffs.map((d) => `${d.mode} ${d.family} ${d.name}${d.why ? ` (${d.why})` : ''}`).join('; ');
      step({ ns: name, kind: 'nft', args: lines, reason, statements: countStatements(lines) }, P.nft);
      // Only the firewall of this namespace's plan (the host's) can say which ports a change hits.
      const firewall = ns.kind === 'host' ? plan.firewall : [];
      for (const c of conntrackCuts(tableDiffs, firewall)) {
        step({ ns: name, kind: 'conntrack', args: c, reason: 'flows no longer admitted' }, P.nft);
      }
    }

    // Stale: plugs the plan dropped, then addresses, routes, links.
    // Only bridges Nucleon owns (brq*, or one the plan names, like a mapped br-ex):
    // a tap on an operator's or libvirt's bridge is not ours to unplug.
    const bridges = new Set(st.links.filter((l) => l.kind === 'bridge' && (/^brq/.test(l.name) || ns.bridges.some((b) => b.name === l.name)))
      .map((l) => l.name));
    const doomed = doomedLinks.get(name)!;
    for (const l of st.links) {
      if (doomed.has(l.name) || isCreated(name, l.name) || !l.master || !bridges.has(l.master)) continue;
      if (!/^(tap|vxlan-)/.test(l.name) || devs.get(l.name)?.master !== undefined) continue;
      // The tap end of a veth being deleted goes away with it: nothing to unplug.
      if (partnerDoomed(l)) continue;
      step({ ns: name, kind: 'ip', args: ['link', 'set', 'dev', l.name, 'nomaster'], reason: `no longer plugged into ${l.master}` }, P.stale);
    }
    for (const a of haveAddrs) {
      if (wantAddrs.has(`${normCidr(a.cidr)} ${a.device}`) || doomed.has(a.device) || !OWNED_LINK.test(a.device)) continue;
      step({ ns: name, kind: 'ip', args: ['addr', 'del', a.cidr, 'dev', a.device], reason: 'address not in plan' }, P.stale);
    }
    for (const r of st.routes) {
      // Kernel and router-advertisement routes come and go by themselves.
      if (matched.has(r) || r.protocol === 'kernel' || r.protocol === 'ra' || (r.dev && (doomed.has(r.dev) || isCreated(name, r.dev)))) continue;
      const ours = r.dev ? OWNED_LINK.test(r.dev) : owned && r.type !== 'unicast';
      if (!ours) continue;
      step({ ns: name, kind: 'ip', args: routeDelArgs(r), reason: 'route not in plan' }, P.stale);
    }
    for (const l of st.links) {
      if (doomed.has(l.name)) step({ ns: name, kind: 'ip', args: ['link', 'del', l.name], reason: `${l.kind || 'device'} not in plan` }, P.stale);
    }
  }

  // DHCP: restart on a changed hash, a dead process or a namespace made anew.
  const planDirs = new Set<string>();
  for (const server of plan.dhcp) {
    planDirs.add(server.dir);
    const ns = real(server.namespace);
    const st = state.dhcp[server.dir];
    const nsFresh = !nsState(ns).exists;
    const why = !st?.marker ? 'never started'
      : !st.running ? 'not running'
      : nsFresh ? 'namespace recreated'
      : st.marker.hash !== server.hash ? `configuration changed (${st.marker.hash} → ${server.hash})`
      : st.marker.namespace !== ns ? `moved to ${label(ns)}`
      : null;
    // The old process is stopped even when it runs elsewhere (a namespace deleted by hand leaves it behind).
    if (why) step({ ns, kind: 'dhcp.start', args: [server.network_id, server.dir], reason: why, dhcp: { server, pid: st?.alive ? st.pid : null } }, P.dhcp);
  }
  for (const [dir, st] of Object.entries(state.dhcp)) {
    if (planDirs.has(dir)) continue;
    step({ ns: st.marker?.namespace ?? '', kind: 'dhcp.stop', args: [dir], reason: `network ${st.marker?.network_id ?? '?'} no longer served here`, dhcp: { pid: st.alive ? st.pid : null } }, P['stale-dhcp']);
  }

  for (const name of state.ownedNamespaces) {
    if (!plans.has(name)) step({ ns: name, kind: 'netns.del', args: [name], reason: 'namespace not in plan' }, P['stale-namespaces']);
  }

  // Stable: within a phase, the order of generation (namespace by namespace).
  const ordered = steps.map((s, i) => [s, i] as const).sort((a, b) => a[0].phase - b[0].phase || a[1] - b[1]).map(([s]) => s);
  return { steps: ordered, notes };
}

const label = (ns: string) => ns || '(host)';

/** CIDR spelled one way (lowercase IPv6). */
const normCidr = (c: string) => c.trim().toLowerCase();

const isV6 = (r: Route) => r.destination.includes(':') || (r.via ?? '').includes(':');

/** 'default' / a host route without /32 or /128, as `ip -j route` prints it. */
export function normDestination(dst: string): string {
  const d = dst.trim().toLowerCase();
  if (d === 'default' || d === '0.0.0.0/0' || d === '::/0') return 'default';
  return d.replace(/\/32$/, '').replace(/(:[0-9a-f]*)\/128$/, '$1');
}

export function routeMatches(r: Route, s: RouteState): boolean {
  const v6 = isV6(r);
  if ((s.family === 6) !== v6) return false;
  if (normDestination(r.destination) !== normDestination(s.dst)) return false;
  if ((r.type ?? 'unicast') !== s.type) return false;
  if (r.via && r.via.toLowerCase() !== (s.gateway ?? '').toLowerCase()) return false;
  if (!r.via && s.gateway) return false;
  if (r.device && r.device !== s.dev) return false;
  return (r.metric ?? (v6 ? 1024 : 0)) === s.metric;
}

/** `route replace …`, written so that `ip` needs no -4/-6 (the addresses say which). */
export function routeArgs(verb: 'replace', r: Route): string[] {
  const v6 = isV6(r);
  const dst = r.destination === 'default' ? (v6 ? '::/0' : '0.0.0.0/0') : r.destination;
  const args = ['route', verb];
  if (r.type === 'unreachable') args.push('unreachable');
  args.push(dst);
  if (r.via) args.push('via', r.via);
  if (r.device) args.push('dev', r.device);
  if (r.metric !== undefined) args.push('metric', String(r.metric));
  args.push('proto', 'static');
  return args;
}

export function routeDelArgs(s: RouteState): string[] {
  const dst = s.dst === 'default' ? (s.family === 6 ? '::/0' : '0.0.0.0/0') : s.dst;
  const args = ['route', 'del'];
  if (s.type !== 'unicast') args.push(s.type);
  args.push(dst);
  if (s.gateway) args.push('via', s.gateway);
  if (s.dev) args.push('dev', s.dev);
  args.push('metric', String(s.metric));
  return args;
}

/** One log line per step: `qrouter-…: ip addr add 10.0.0.1/24 dev qr-…`. */
export function describeStep(s: Step): string {
  const where = label(s.ns);
  switch (s.kind) {
    case 'netns.add': return `${where}: ip netns add ${s.args[0]}`;
    case 'netns.del': return `${where}: ip netns del ${s.args[0]} (${s.reason})`;
    case 'ip': return `${where}: ip ${s.args.join(' ')}`;
    case 'bridge': return `${where}: bridge ${s.args.join(' ')}`;
    case 'sysctl': return `${where}: sysctl -w ${s.args[0]}=${s.args[1]}`;
    case 'nft': return `${where}: nft -f - (${s.statements ?? s.args.length} statements: ${s.reason})`;
    case 'conntrack': return `${where}: conntrack ${s.args.join(' ')}`;
    case 'dhcp.start': return `${where}: dnsmasq for network ${s.args[0]} (${s.dhcp?.pid ? `restart of pid ${s.dhcp.pid}` : 'start'}: ${s.reason})`;
    case 'dhcp.stop': return `${where}: stop dnsmasq in ${s.args[0]} (${s.reason})`;
  }
}
