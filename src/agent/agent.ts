// The agent runtime: registers this host, then keeps it converged with the
// logical model. Level-triggered: every pass compiles the *whole* desired host
// plan from the current model and lets apply change only what differs from the
// host, so a lost event, a crash halfway through an apply or a namespace
// deleted by hand is healed by the next pass, whatever caused it. Events only
// decide *when* a pass runs:
//   - on start;
//   - when the change feed advances (latestSeq, polled every ~100 ms: one
//     primary-key read);
//   - when a tap appears or disappears in the host namespace (a VM plugged or
//     unplugged; polled every ~500 ms with one `ip -o link`);
//   - on a periodic resync (default 30 s), which is what heals damage nobody
//     announced.
// Passes never overlap: triggers during a pass coalesce into one more pass.
// A failed pass is logged and the next trigger (at worst the resync) retries.
//
// A pass: ensure DHCP ports (network node) → load model → host facts →
// compile → apply → report status. Without root the data plane is off: the
// agent compiles and logs the plan and writes nothing (plan-only mode).
import { EventEmitter } from 'node:events';
import crypto from 'node:crypto';
import type { Logger as PinoLogger } from 'pino';
import type { Store } from '../store/database.ts';
import { latestSeq } from '../services/change-feed.ts';
import { AgentService } from '../services/agents.ts';
import { PortService } from '../services/ports.ts';
import { systemContext } from '../identity/context.ts';
import type { HostConfig, HostFacts, LogicalModel } from './model.ts';
import type { HostPlan } from './plan.ts';
import { loadModel, type LoadModelOptions } from './load-model.ts';
import type { DecryptPsk } from './load-vpn.ts';
import { reportStatus, type ReportResult } from './report.ts';
import type { IpsecApplyResult } from './apply/ipsec.ts';
import type { IpsecStatus } from './vpn/status.ts';

export type AgentLogger = Pick<PinoLogger, 'info' | 'warn' | 'error' | 'debug'>;

/** What the runtime needs from compile and apply (wired in index.ts; faked in tests). */
export interface AgentDeps {
  compile(model: LogicalModel, config: HostConfig, facts: HostFacts): HostPlan;
  /** Converges the host to the plan: how many changes it made, and what it could not do this pass. */
  apply(plan: HostPlan, ctx: ApplyContext): Promise<{ changed: number; notes?: string[] }>;
  /** The port indexes and network zones the live firewall uses (first pass after a restart). */
  readFirewallFacts(ctx: ApplyContext): Promise<Pick<HostFacts, 'portIndexes' | 'networkZones'>>;
  /** Tap devices in the host namespace. */
  listTaps(hostNamespace: string): Promise<string[]>;
  /** VPNaaS: converges the plan's strongSwan instances (absent: no VPN on this agent, e.g. fake deps in tests). */
  applyIpsec?(plan: HostPlan, ctx: ApplyContext): Promise<IpsecApplyResult>;
}

/** Writes IPsec connection statuses to the store (the VPN service's reportIpsecStatus). */
export type IpsecReporter = (store: Store, report: { connections: Record<string, IpsecStatus> }) => Promise<unknown>;

export interface ApplyContext {
  /** Where the plan's '' namespace is: '' = the agent's own, or a named netns acting as the host. */
  hostNamespace: string;
  config: HostConfig;
  /** One line per change made to the host. */
  log(line: string): void;
}

export interface AgentOptions {
  store: Store;
  config: HostConfig;
  deps: AgentDeps;
  /** '' (default) or a network namespace that acts as this host (tests: several hosts on one machine). */
  hostNamespace?: string;
  /** Off: plan-only mode (compile and log, touch nothing). Default: on when running as root. */
  dataPlane?: boolean;
  /** Full resync period (default 30 s). */
  resyncIntervalMs?: number;
  /** Heartbeat period (default 5 s); the agent counts as alive for twice that. */
  reportIntervalMs?: number;
  feedPollMs?: number;
  tapPollMs?: number;
  availabilityZone?: string | null;
  /** How often the IPsec step alone re-runs while an initiator connection is DOWN (default 2 s). */
  ipsecRetryMs?: number;
  /** Where IPsec statuses go; without it they are only kept in `lastIpsec`. */
  reportIpsec?: IpsecReporter;
  /** Opens sealed VPN PSKs; without it the agent runs no VPN (see loadModel). */
  decryptPsk?: DecryptPsk;
  logger: AgentLogger;
}

export interface PassResult {
  reason: string;
  /** The change-feed position the pass's model reflects (at least). */
  seq: number;
  plan: HostPlan | null;
  /** Changes apply made (0 in plan-only mode). */
  changes: number;
  reported: ReportResult;
  dhcpPorts: number;
  ms: { total: number; load: number; compile: number; apply: number; report: number };
  error?: Error;
}

export const DEFAULTS = {
  resyncIntervalMs: 30_000,
  reportIntervalMs: 5_000,
  feedPollMs: 100,
  tapPollMs: 500,
};

export const isRoot = () => process.getuid?.() === 0;

const NO_REPORT: ReportResult = { ports: [], floatingips: [] };

export class Agent extends EventEmitter {
  readonly config: HostConfig;
  readonly hostNamespace: string;
  readonly dataPlane: boolean;
  private readonly store: Store;
  private readonly deps: AgentDeps;
  private readonly log: AgentLogger;
  private readonly agents: AgentService;
  private readonly ports: PortService;
  private readonly intervals: typeof DEFAULTS;
  private readonly availabilityZone: string | null;

  private timers: NodeJS.Timeout[] = [];
  private current: Promise<PassResult> | null = null;
  private queued: Promise<PassResult> | null = null;
  private seenSeq = -1;
  private lastTaps: string | null = null;
  private lastPlan: HostPlan | null = null;
  private lastNotes = '';
  private polling = { feed: false, taps: false, heartbeat: false, ipsec: false };
  private stopped = true;
  private starting: Promise<unknown> | null = null;
  private readonly ipsecRetryMs: number;
  private readonly reportIpsec: IpsecReporter | null;
  private readonly modelOptions: LoadModelOptions;
  private lastPskErrors = '';
  /** The last IPsec step's result (statuses, initiators still DOWN). */
  lastIpsec: IpsecApplyResult | null = null;
  /** Serialises the IPsec step between passes and the retry timer (two steps could start one charon twice). */
  private ipsecChain: Promise<unknown> = Promise.resolve();
  private lastIpsecReport = '';

  constructor(opts: AgentOptions) {
    super();
    this.store = opts.store;
    this.config = opts.config;
    this.deps = opts.deps;
    this.log = opts.logger;
    this.hostNamespace = opts.hostNamespace ?? '';
    this.dataPlane = opts.dataPlane ?? isRoot();
    this.availabilityZone = opts.availabilityZone ?? 'nova';
    this.ipsecRetryMs = opts.ipsecRetryMs ?? 2000;
    this.reportIpsec = opts.reportIpsec ?? null;
    this.modelOptions = {
      decryptPsk: opts.decryptPsk,
      onPskError: (ids) => {
        // Said once per set of ids; the ids only, never the sealed or opened value.
        const key = ids.join(',');
        if (key !== this.lastPskErrors) this.log.warn({ host: this.config.host, connections: ids }, 'IPsec: PSK sealed with another key; connections skipped');
        this.lastPskErrors = key;
      },
    };
    this.intervals = {
      resyncIntervalMs: opts.resyncIntervalMs ?? DEFAULTS.resyncIntervalMs,
      reportIntervalMs: opts.reportIntervalMs ?? DEFAULTS.reportIntervalMs,
      feedPollMs: opts.feedPollMs ?? DEFAULTS.feedPollMs,
      tapPollMs: opts.tapPollMs ?? DEFAULTS.tapPollMs,
    };
    this.agents = new AgentService(this.store);
    this.ports = new PortService(this.store);
  }

  /** What this agent tells /v2.0/agents about itself. */
  configurations(): Record<string, unknown> {
    const c = this.config;
    return {
      bridge_mappings: c.bridgeMappings,
      vlan_interfaces: c.vlanInterfaces,
      underlay_ip: c.underlayIp,
      underlay_interface: c.underlayInterface,
      tunnel_types: c.underlayIp ? ['vxlan'] : [],
      network_node: c.networkNode,
      namespace_prefix: c.namespacePrefix,
      host_namespace: this.hostNamespace || null,
      state_dir: c.stateDir,
      data_plane: this.dataPlane,
      report_interval: this.intervals.reportIntervalMs / 1000,
      resync_interval: this.intervals.resyncIntervalMs / 1000,
    };
  }

  /** Registers, runs the first pass, and starts watching. Resolves once the first pass is done. */
  start(): Promise<PassResult> {
    const p = this.startUp();
    this.starting = p.catch(() => {});
    return p;
  }

  private async startUp(): Promise<PassResult> {
    this.stopped = false;
    await this.register();
    if (!this.dataPlane) this.log.warn({ host: this.config.host }, 'plan-only mode: the data plane is off (not root): compiling and logging plans, changing nothing');
    const first = await this.runOnce('start');
    if (this.stopped) return first;
    this.every(this.intervals.feedPollMs, () => this.pollFeed());
    this.every(this.intervals.tapPollMs, () => this.pollTaps());
    this.every(this.intervals.resyncIntervalMs, () => void this.runOnce('resync'));
    this.every(this.intervals.reportIntervalMs, () => this.heartbeat());
    // libipsec never initiates from traffic and charon gives up after one
    // failed attempt (peer not configured yet, wrong PSK): while an initiator
    // is DOWN, retry the IPsec step alone, so a tunnel comes up within ~2 s of
    // its peer appearing or its PSK being fixed, without a full pass.
    if (this.deps.applyIpsec) {
      this.every(this.ipsecRetryMs, () => {
        if (this.current || this.queued || !this.lastPlan || !this.lastIpsec?.pendingInitiators.length) return;
        void this.guarded('ipsec', () => this.ipsecStep(this.lastPlan!).then(() => undefined));
      });
    }
    return first;
  }

  /** Stops watching and waits for a running pass. The data plane stays as it is (as Neutron's agents leave it). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.starting;
    for (const t of this.timers.splice(0)) clearInterval(t);
    await Promise.allSettled([this.current, this.queued]);
  }

  /**
   * Runs a pass now, or right after the running one: never two at once, and
   * any number of triggers during a pass make exactly one more.
   */
  runOnce(reason = 'manual'): Promise<PassResult> {
    if (this.queued) return this.queued;
    const begin = (): Promise<PassResult> => {
      this.queued = null;
      const p = this.pass(reason).finally(() => {
        if (this.current === p) this.current = null;
      });
      this.current = p;
      return p;
    };
    if (this.current) {
      this.queued = this.current.then(begin, begin);
      return this.queued;
    }
    return begin();
  }

  /** The plan this host should have now, without touching anything (`--print-plan`). */
  async computePlan(): Promise<{ model: LogicalModel; facts: HostFacts; plan: HostPlan }> {
    const model = await loadModel(this.store, this.config, this.modelOptions);
    const facts = await this.readFacts();
    return { model, facts, plan: this.deps.compile(model, this.config, facts) };
  }

  // ---- one pass

  private async pass(reason: string): Promise<PassResult> {
    const t0 = performance.now();
    const ms = { total: 0, load: 0, compile: 0, apply: 0, report: 0 };
    const result: PassResult = { reason, seq: this.seenSeq, plan: null, changes: 0, reported: NO_REPORT, dhcpPorts: 0, ms };
    try {
      // Read before anything else reads the model: a change committed from here
      // on advances the feed past seenSeq and triggers another pass.
      result.seq = this.seenSeq = await latestSeq(this.store.db);
      if (this.dataPlane && this.config.networkNode) result.dhcpPorts = await this.ensureDhcpPorts();
      const model = await timed(ms, 'load', () => loadModel(this.store, this.config, this.modelOptions));
      const facts = await this.readFacts();
      const plan = result.plan = await timed(ms, 'compile', async () => this.deps.compile(model, this.config, facts));
      this.lastPlan = plan;
      if (!this.dataPlane) {
        this.log.info({ reason, summary: summarize(plan) }, 'plan-only mode: the data plane is off; plan compiled, nothing applied');
        return result;
      }
      const applied = await timed(ms, 'apply', () => this.deps.apply(plan, this.applyContext()));
      result.changes = applied.changed;
      this.logNotes(applied.notes ?? []);
      result.reported = await timed(ms, 'report', () => reportStatus(this.store, plan, { host: this.config.host, networkNode: this.config.networkNode }));
      await this.skipOwnReport(result);
      if (this.deps.applyIpsec) {
        const t = performance.now();
        await this.ipsecStep(plan);
        ms.apply += performance.now() - t;
      }
      return result;
    } catch (e) {
      result.error = e instanceof Error ? e : new Error(String(e));
      this.log.error({ err: result.error, reason }, 'agent pass failed; the next pass retries');
      return result;
    } finally {
      ms.total = performance.now() - t0;
      this.logPass(result);
      this.emit('pass', result);
    }
  }

  /**
   * The status this pass reported is itself a change in the feed. When the
   * feed advanced by exactly those rows, nothing else happened meanwhile and
   * there is no need for a pass that would find nothing to do.
   */
  private async skipOwnReport(result: PassResult): Promise<void> {
    const written = result.reported.ports.length + result.reported.floatingips.length;
    if (written === 0) return;
    const seq = await latestSeq(this.store.db);
    if (seq === result.seq + written && this.seenSeq === result.seq) this.seenSeq = seq;
  }

  private logPass(r: PassResult): void {
    const fields = {
      reason: r.reason, seq: r.seq, changes: r.changes, ports_reported: r.reported.ports.length,
      floatingips_reported: r.reported.floatingips.length, dhcp_ports: r.dhcpPorts, ms: roundAll(r.ms),
    };
    if (r.changes || r.reported.ports.length || r.reported.floatingips.length || r.dhcpPorts) this.log.info(fields, 'agent pass converged the host');
    else this.log.debug(fields, 'agent pass: nothing to change');
  }

  /** What apply could not do (a VLAN on a kernel without VLANs...): said once, again only when it changes. */
  private logNotes(notes: string[]): void {
    const key = notes.join('\n');
    if (key === this.lastNotes) return;
    this.lastNotes = key;
    for (const note of notes) this.log.warn({ host: this.config.host }, note);
  }

  /**
   * Converges the strongSwan instances and reports connection statuses (only
   * when they changed since the last report: the reporter writes nothing for
   * unchanged rows anyway, this saves the transaction).
   */
  private ipsecStep(plan: HostPlan): Promise<IpsecApplyResult> {
    const step = async () => {
      const r = await this.deps.applyIpsec!(plan, this.applyContext());
      this.lastIpsec = r;
      for (const [router, reason] of Object.entries(r.errors)) this.log.warn({ host: this.config.host, router }, `IPsec: ${reason}`);
      const key = JSON.stringify(r.statuses);
      if (this.reportIpsec && Object.keys(r.statuses).length && key !== this.lastIpsecReport) {
        await this.reportIpsec(this.store, { connections: r.statuses });
        this.lastIpsecReport = key;
      }
      return r;
    };
    const p = this.ipsecChain.then(step, step);
    this.ipsecChain = p.catch(() => undefined);
    return p;
  }

  private applyContext(): ApplyContext {
    return { hostNamespace: this.hostNamespace, config: this.config, log: (line) => this.log.info({ host: this.config.host }, line) };
  }

  /**
   * What compile may know about the host. Port indexes and zones come from
   * the last plan while the agent runs, and from the live firewall after a
   * restart, so a port keeps its number (and its conntrack zone its flows).
   */
  private async readFacts(): Promise<HostFacts> {
    const taps = await this.listTaps();
    this.lastTaps = taps.join(',');
    if (this.lastPlan) return { taps, portIndexes: this.lastPlan.portIndexes, networkZones: this.lastPlan.networkZones };
    if (!this.dataPlane) return { taps, portIndexes: {}, networkZones: {} };
    try {
      return { taps, ...await this.deps.readFirewallFacts(this.applyContext()) };
    } catch (e) {
      this.log.warn({ err: e }, 'could not read the live firewall; numbering ports afresh');
      return { taps, portIndexes: {}, networkZones: {} };
    }
  }

  private async listTaps(): Promise<string[]> {
    try {
      return (await this.deps.listTaps(this.hostNamespace)).sort();
    } catch (e) {
      this.log.debug({ err: e }, 'could not list taps');
      return [];
    }
  }

  // ---- triggers

  private every(ms: number, fn: () => void | Promise<void>): void {
    // Not unref'd: these timers are what keeps a `nucleon agent` process running until stop().
    this.timers.push(setInterval(() => void fn(), ms));
  }

  /** Skips a tick while the previous one of the same kind is still out (a slow database never piles up reads). */
  private async guarded(kind: keyof Agent['polling'], fn: () => Promise<void>): Promise<void> {
    if (this.polling[kind] || this.stopped) return;
    this.polling[kind] = true;
    try {
      await fn();
    } catch (e) {
      this.log.debug({ err: e, kind }, 'agent poll failed');
    } finally {
      this.polling[kind] = false;
    }
  }

  private pollFeed(): Promise<void> {
    return this.guarded('feed', async () => {
      if (await latestSeq(this.store.db) > this.seenSeq) void this.runOnce('feed');
    });
  }

  private pollTaps(): Promise<void> {
    return this.guarded('taps', async () => {
      const taps = (await this.listTaps()).join(',');
      if (this.lastTaps !== null && taps !== this.lastTaps) void this.runOnce('taps');
    });
  }

  private heartbeat(): Promise<void> {
    return this.guarded('heartbeat', async () => {
      const known = await this.agents.heartbeat(this.config.host, this.intervals.reportIntervalMs / 1000);
      // An admin deleted the row: register again, as Neutron's report_state recreates it.
      if (!known) await this.register();
    });
  }

  /** Upserts this host's row in /v2.0/agents (start() does it; `--once` and `--print-plan` call it alone). */
  async register(): Promise<void> {
    const row = await this.agents.register({
      host: this.config.host,
      reportInterval: this.intervals.reportIntervalMs / 1000,
      configurations: this.configurations(),
      availabilityZone: this.availabilityZone,
    });
    this.log.info({ host: row.host, id: row.id, data_plane: this.dataPlane }, 'agent registered');
  }

  // ---- DHCP ports (network node)

  /**
   * One network:dhcp port per network with a DHCP-enabled subnet, with an
   * address on each such subnet, created through the port service like any
   * port (IPAM, quota, feed), as Neutron's DHCP agent does. Returns how many
   * ports were created, changed or removed.
   */
  private async ensureDhcpPorts(): Promise<number> {
    const db = this.store.db;
    const subnets = await db.selectFrom('subnets').select(['id', 'network_id']).where('enable_dhcp', '=', 1).execute();
    const wanted = new Map<string, string[]>();
    for (const s of subnets) wanted.set(s.network_id, [...(wanted.get(s.network_id) ?? []), s.id]);
    const deviceIdPrefix = `dhcp${hostUuid(this.config.host)}-`;
    const mine = await db.selectFrom('ports').select(['id', 'network_id', 'device_id'])
      .where('device_owner', '=', 'network:dhcp').where('device_id', 'like', `${deviceIdPrefix}%`).execute();
    const held = await this.addressesBySubnet(mine.map((p) => p.id));
    const ctx = systemContext();
    let changed = 0;
    for (const port of mine) {
      const want = wanted.get(port.network_id);
      const has = held.get(port.id) ?? [];
      const attempt = async (what: string, fn: () => Promise<unknown>) => {
        try {
          await fn();
          changed++;
        } catch (e) {
          this.log.warn({ err: e, port: port.id, network: port.network_id }, `could not ${what} a DHCP port; retried next pass`);
        }
      };
      if (!want) {
        await attempt('remove', () => this.ports.delete(ctx, port.id));
      } else if (want.some((s) => !has.some((h) => h.subnet_id === s))) {
        const fixed = [...has, ...want.filter((s) => !has.some((h) => h.subnet_id === s)).map((subnet_id) => ({ subnet_id }))];
        await attempt('re-address', () => this.ports.update(ctx, port.id, { fixed_ips: fixed }));
      }
    }
    const served = new Set(mine.map((p) => p.network_id));
    const networks = await db.selectFrom('networks').select(['id', 'project_id']).execute();
    for (const n of networks) {
      const want = wanted.get(n.id);
      if (!want || served.has(n.id)) continue;
      try {
        await this.ports.create(ctx, {
          network_id: n.id, project_id: n.project_id, name: '', device_owner: 'network:dhcp',
          device_id: `${deviceIdPrefix}${n.id}`, 'binding:host_id': this.config.host,
          fixed_ips: want.map((subnet_id) => ({ subnet_id })),
        });
        changed++;
      } catch (e) {
        // A network deleted meanwhile, a full subnet, a quota: the next pass tries again.
        this.log.warn({ err: e, network: n.id }, 'could not create a DHCP port; retried next pass');
      }
    }
    return changed;
  }

  private async addressesBySubnet(portIds: string[]): Promise<Map<string, Array<{ subnet_id: string; ip_address: string }>>> {
    const out = new Map<string, Array<{ subnet_id: string; ip_address: string }>>();
    if (portIds.length === 0) return out;
    const rows = await this.store.db.selectFrom('ip_allocations').select(['port_id', 'subnet_id', 'ip_address'])
      .where('port_id', 'in', portIds).execute();
    for (const r of rows) out.set(r.port_id, [...(out.get(r.port_id) ?? []), { subnet_id: r.subnet_id, ip_address: r.ip_address }]);
    return out;
  }
}

/** Neutron's DHCP port device_id is 'dhcp' + uuid5(NAMESPACE_DNS, host) + '-' + network id. */
export function hostUuid(host: string): string {
  const ns = Buffer.from('6ba7b8109dad11d180b400c04fd430c8', 'hex');
  const h = crypto.createHash('sha1').update(Buffer.concat([ns, Buffer.from(host, 'utf8')])).digest();
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** A few counts for the plan-only log line (the whole plan is `--print-plan`). */
export function summarize(plan: HostPlan): Record<string, number> {
  return {
    namespaces: plan.namespaces.length,
    firewall_ports: plan.firewall.length,
    dhcp_servers: plan.dhcp.length,
    bindings: plan.bindings.length,
    routers: plan.routers.length,
    floatingips: plan.floatingips.length,
  };
}

async function timed<T>(ms: Record<string, number>, key: string, fn: () => Promise<T>): Promise<T> {
  const t = performance.now();
  try {
    return await fn();
  } finally {
    ms[key] = performance.now() - t;
  }
}

const roundAll = (o: Record<string, number>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v * 10) / 10]));
