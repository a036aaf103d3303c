// The agent as the rest of Nucleon uses it: the runtime (agent.ts) wired to
// the real compile and apply steps and to the host's taps, plus turning
// command-line flags into a HostConfig. `nucleon agent`, `nucleon serve` (in
// process) and the end-to-end tests all build their agent here.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Store } from '../store/database.ts';
import { compileHost } from './compile/index.ts';
import { applyPlan, readFirewallFacts } from './apply/index.ts';
import { applyIpsec } from './apply/ipsec.ts';
import { SecretBox, SECRET_KEY_FILE } from '../services/secret-box.ts';
import { reportIpsecStatus } from '../services/vpn/report.ts';
import { run } from './apply/exec.ts';
import { Agent, DEFAULTS, isRoot, type AgentDeps, type AgentLogger, type IpsecReporter } from './agent.ts';
import type { HostConfig } from './model.ts';

export { Agent, isRoot, type AgentLogger, type PassResult } from './agent.ts';
export { loadModel } from './load-model.ts';
export { reportStatus } from './report.ts';

/** Typed so the CLI can tell a bad flag from a failure. */
export class AgentConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentConfigError';
  }
}

/** The agent's command-line flags (shared by `nucleon agent` and `nucleon serve`). */
export interface AgentFlags {
  host?: string;
  hostNamespace?: string;
  bridgeMapping?: string[];
  vlanInterface?: string[];
  underlayIp?: string;
  underlayInterface?: string;
  networkNode?: boolean;
  namespacePrefix?: string;
  /** 'kernel' or 'libipsec' (default). */
  ipsecBackend?: string;
  stateDir?: string;
  /** Seconds. */
  resyncInterval?: number;
  /** Seconds. */
  reportInterval?: number;
}

/** 'physnet:value' pairs → { physnet: value } (--bridge-mapping public:br-ex). */
export function parseMappings(flag: string, pairs: string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const m = /^([^:\s]+):([^:\s]+)$/.exec(pair);
    if (!m) throw new AgentConfigError(`${flag} expects physnet:name, got '${pair}'`);
    if (m[1] in out) throw new AgentConfigError(`${flag}: physical network '${m[1]}' given twice`);
    out[m[1]] = m[2];
  }
  return out;
}

export function hostConfigFrom(flags: AgentFlags, dataDir: string): HostConfig {
  return {
    host: flags.host || os.hostname(),
    bridgeMappings: parseMappings('--bridge-mapping', flags.bridgeMapping),
    vlanInterfaces: parseMappings('--vlan-interface', flags.vlanInterface),
    underlayIp: flags.underlayIp || null,
    underlayInterface: flags.underlayInterface || null,
    networkNode: flags.networkNode ?? true,
    namespacePrefix: flags.namespacePrefix ?? '',
    stateDir: path.resolve(flags.stateDir ?? path.join(dataDir, 'agent')),
    ipsecBackend: ipsecBackendFrom(flags.ipsecBackend),
  };
}

function ipsecBackendFrom(value: string | undefined): 'kernel' | 'libipsec' {
  if (value === undefined || value === 'libipsec') return 'libipsec';
  if (value === 'kernel') return 'kernel';
  throw new Error(`--ipsec-backend: '${value}' is neither kernel nor libipsec`);
}

/** Tap devices (VM ports and the host ends of our veths) in a namespace: one `ip -o link`. */
export async function listTaps(namespace: string): Promise<string[]> {
  const r = await run(namespace ? ['ip', '-n', namespace, '-o', 'link', 'show'] : ['ip', '-o', 'link', 'show']);
  if (r.code !== 0) throw new Error(`ip link in '${namespace || 'the host namespace'}': ${r.stderr.trim()}`);
  const names: string[] = [];
  for (const line of r.stdout.split('\n')) {
    // "7: tapabc@if6: <BROADCAST,...>" — the name ends at '@' (veths) or ':'.
    const m = /^\d+:\s+([^:@\s]+)/.exec(line);
    if (m && m[1].startsWith('tap')) names.push(m[1]);
  }
  return names;
}

/** The real compile and apply steps, and the host's taps. */
export const realDeps: AgentDeps = {
  compile: compileHost,
  apply: (plan, ctx) => applyPlan(plan, { hostNamespace: ctx.hostNamespace, config: ctx.config, log: ctx.log }),
  readFirewallFacts: (ctx) => readFirewallFacts({ config: ctx.config }),
  listTaps,
  // After applyPlan: the router namespaces and their unreachable routes exist by then.
  applyIpsec: (plan, ctx) => applyIpsec(plan.ipsec, { stateDir: ctx.config.stateDir, log: ctx.log }),
};

export interface CreateAgentOptions {
  store: Store;
  config: HostConfig;
  hostNamespace?: string;
  /** Default: on when root. */
  dataPlane?: boolean;
  resyncIntervalMs?: number;
  reportIntervalMs?: number;
  /** Where IPsec connection statuses go (default: the VPN service's reportIpsecStatus on the store). */
  reportIpsec?: IpsecReporter;
  /**
   * The deployment's secret key (VPN PSKs are sealed with it). Default: secret.key
   * beside the agent's state dir, i.e. DATA_DIR/secret.key for the default
   * --state-dir DATA_DIR/agent. Missing or unreadable: the agent runs no VPN.
   */
  secretKeyFile?: string;
  logger: AgentLogger;
}

export function createAgent(opts: CreateAgentOptions): Agent {
  const keyFile = opts.secretKeyFile ?? path.join(path.dirname(opts.config.stateDir), SECRET_KEY_FILE);
  let decryptPsk: ((sealed: string) => string) | undefined;
  try {
    const box = new SecretBox(fs.readFileSync(keyFile));
    decryptPsk = (sealed) => box.decrypt(sealed);
  } catch {
    // Read-only on purpose: an agent that made its own key could never open the API's PSKs.
    opts.logger.info({ file: keyFile }, 'no readable secret key: VPN (IPsec) connections are not served by this agent');
  }
  return new Agent({
    ...opts, deps: realDeps, dataPlane: opts.dataPlane ?? isRoot(),
    reportIpsec: opts.reportIpsec ?? ((store, report) => reportIpsecStatus(store, report)),
    decryptPsk,
  });
}

/** Flags → the runtime's options (seconds → milliseconds, defaults). */
export function runtimeOptionsFrom(flags: AgentFlags): { hostNamespace: string; resyncIntervalMs: number; reportIntervalMs: number } {
  const seconds = (name: string, v: number | undefined, fallbackMs: number) => {
    if (v === undefined) return fallbackMs;
    if (!Number.isFinite(v) || v <= 0) throw new AgentConfigError(`${name} must be a positive number of seconds`);
    return v * 1000;
  };
  return {
    hostNamespace: flags.hostNamespace ?? '',
    resyncIntervalMs: seconds('--resync-interval', flags.resyncInterval, DEFAULTS.resyncIntervalMs),
    reportIntervalMs: seconds('--report-interval', flags.reportInterval, DEFAULTS.reportIntervalMs),
  };
}
