// applyPlan: read the host, diff, run the steps. Level-triggered: a pass that
// fails stops at the failing step with an error naming it, and the next pass
// reads the host again and carries on from wherever things are.
import fs from 'node:fs';
import path from 'node:path';
import type { HostPlan } from '../plan.ts';
import type { HostConfig, HostFacts } from '../model.ts';
import { batch, batchWord, CommandError, inNs, namespacePids, run, runOk, shellIn, shq, terminate, type Logger, type RunResult } from './exec.ts';
import { readHostState, type HostState } from './host-state.ts';
import { describeStep, diffHost, type Step } from './diff.ts';
import { startDhcp, stopDhcp } from './dhcp.ts';

export interface ApplyOptions {
  /** Where the plan's '' namespace lives: '' = the agent's own, or a named netns acting as the host. */
  hostNamespace?: string;
  /** Defaults for namespacePrefix and stateDir. */
  config?: Pick<HostConfig, 'namespacePrefix' | 'stateDir'>;
  namespacePrefix?: string;
  /** DHCP servers found under it that the plan no longer has are stopped; firewall facts are kept there. */
  stateDir?: string;
  /** One line per change. */
  log?: Logger;
  /** Diff only: return the steps without running them. */
  dryRun?: boolean;
}

export interface ApplyResult {
  /** The steps run (or, with dryRun, that would run), in order. */
  steps: Step[];
  /** How many changes were made (steps.length, 0 with dryRun). */
  changed: number;
  /** What could not be done this pass and why (see DiffResult.notes). */
  notes: string[];
  ms: { read: number; diff: number; exec: number };
}

export class ApplyError extends Error {
  constructor(readonly step: Step, readonly done: Step[], detail: string) {
    super(`apply stopped at step ${done.length + 1} [${describeStep(step)}] (${step.reason}): ${detail}`);
    this.name = 'ApplyError';
  }
}

const FACTS_FILE = 'firewall-facts.json';

export async function applyPlan(plan: HostPlan, opts: ApplyOptions = {}): Promise<ApplyResult> {
  const hostNamespace = opts.hostNamespace ?? '';
  const namespacePrefix = opts.namespacePrefix ?? opts.config?.namespacePrefix ?? '';
  const stateDir = opts.stateDir ?? opts.config?.stateDir;
  const t0 = performance.now();
  const state = await readHostState(plan, { hostNamespace, namespacePrefix, stateDir });
  const t1 = performance.now();
  const { steps, notes } = diffHost(plan, state, { hostNamespace, namespacePrefix });
  const t2 = performance.now();
  if (opts.dryRun) return { steps, changed: 0, notes, ms: { read: t1 - t0, diff: t2 - t1, exec: 0 } };
  // The numbers go to disk before the firewall uses them: after a crash the
  // next compile keeps whatever a half-done pass may have put live.
  if (stateDir) saveFirewallFacts(stateDir, plan);
  await executeSteps(steps, opts.log ?? (() => {}));
  return { steps, changed: steps.length, notes, ms: { read: t1 - t0, diff: t2 - t1, exec: performance.now() - t2 } };
}

/** Reads the host and diffs without changing anything. */
export async function planSteps(plan: HostPlan, opts: ApplyOptions = {}): Promise<{ state: HostState; steps: Step[]; notes: string[] }> {
  const hostNamespace = opts.hostNamespace ?? '';
  const namespacePrefix = opts.namespacePrefix ?? opts.config?.namespacePrefix ?? '';
  const state = await readHostState(plan, { hostNamespace, namespacePrefix, stateDir: opts.stateDir ?? opts.config?.stateDir });
  return { state, ...diffHost(plan, state, { hostNamespace, namespacePrefix }) };
}

/** Steps that run together: consecutive ones of one namespace and one tool. */
function groupKey(s: Step): string | null {
  if (s.kind === 'ip' || s.kind === 'bridge' || s.kind === 'sysctl') return `${s.kind}\0${s.ns}`;
  // A namespace's nft transaction and the conntrack cuts that follow it: one `ip netns exec`.
  if (s.kind === 'nft' || s.kind === 'conntrack') return `nft\0${s.ns}`;
  return null;
}

export async function executeSteps(steps: Step[], log: Logger): Promise<void> {
  const done: Step[] = [];
  for (let i = 0; i < steps.length;) {
    const key = groupKey(steps[i]);
    let j = i + 1;
    if (key !== null) while (j < steps.length && groupKey(steps[j]) === key) j++;
    const group = steps.slice(i, j);
    for (const s of group) log(describeStep(s));
    const failure = await runGroup(group);
    if (failure) throw new ApplyError(failure.step, [...done, ...group.slice(0, group.indexOf(failure.step))], failure.detail);
    done.push(...group);
    i = j;
  }
}

const detailOf = (r: RunResult) => (r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`).split('\n').slice(0, 20).join('\n');

async function runGroup(group: Step[]): Promise<{ step: Step; detail: string } | null> {
  const first = group[0];
  const ns = first.ns;
  try {
    switch (first.kind) {
      case 'ip':
      case 'bridge': {
        const r = await batch(first.kind, ns, group.map((s) => s.args.map(batchWord).join(' ')));
        return r.ok ? null : { step: group[Math.min(r.line, group.length) - 1], detail: detailOf(r.result) };
      }
      case 'sysctl': {
        const r = await run(inNs(ns, ['sysctl', '-q', '-w', ...group.map((s) => `${s.args[0]}=${s.args[1]}`)]));
        return r.code === 0 ? null : { step: first, detail: detailOf(r) };
      }
      case 'nft':
      case 'conntrack': {
        const tx = group.find((s) => s.kind === 'nft');
        const cuts = group.filter((s) => s.kind === 'conntrack');
        // nft reads the transaction from our stdin; exit 100 tells its failure from a cut's.
        // "0 flow entries have been deleted" exits 1: not a failure.
        const script = [
          ...(tx ? ['nft -f - || exit 100'] : []),
          'rc=0',
          ...cuts.map((s) => `out=$(conntrack ${s.args.map(shq).join(' ')} 2>&1) || case "$out" in *" 0 flow entries"*) ;; *) echo "conntrack ${s.args.join(' ')}: $out" >&2; rc=1;; esac`),
          'exit $rc',
        ].join('\n');
        const r = await shellIn(ns, script, tx ? tx.args.join('\n') + '\n' : undefined);
        if (r.code === 0) return null;
        return { step: r.code === 100 && tx ? tx : cuts[0] ?? first, detail: detailOf(r) };
      }
      case 'netns.add':
        await runOk(['ip', 'netns', 'add', first.args[0]]);
        return null;
      case 'netns.del': {
        // Processes keep a deleted namespace alive (dnsmasq, say): stop them first.
        await terminate(await namespacePids(first.args[0]));
        await runOk(['ip', 'netns', 'del', first.args[0]]);
        return null;
      }
      case 'dhcp.start':
        await startDhcp(first.dhcp!.server!, ns, first.dhcp!.pid);
        return null;
      case 'dhcp.stop':
        await stopDhcp(first.args[0], first.dhcp?.pid ?? null);
        return null;
    }
  } catch (e) {
    return { step: first, detail: e instanceof CommandError ? detailOf(e.result) : (e as Error).message };
  }
}

function saveFirewallFacts(stateDir: string, plan: HostPlan) {
  const file = path.join(stateDir, FACTS_FILE);
  const text = JSON.stringify({ portIndexes: plan.portIndexes, networkZones: plan.networkZones }) + '\n';
  try {
    if (fs.readFileSync(file, 'utf8') === text) return;
  } catch { /* first time */ }
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(`${file}.tmp`, text, { mode: 0o600 });
  fs.renameSync(`${file}.tmp`, file);
}

/**
 * The port indexes and network zones the live firewall was built with, so
 * that the first compile after a restart keeps them (renumbering would
 * rewrite every mark, map element and chain name). The live tables only know
 * devices and bridges (11 characters of an id), so apply records the plan's
 * numbers in stateDir before it uses them, and this reads them back.
 */
export async function readFirewallFacts(ctx: { config?: Pick<HostConfig, 'stateDir'>; stateDir?: string }): Promise<Pick<HostFacts, 'portIndexes' | 'networkZones'>> {
  const stateDir = ctx.stateDir ?? ctx.config?.stateDir;
  if (!stateDir) return { portIndexes: {}, networkZones: {} };
  try {
    const data = JSON.parse(fs.readFileSync(path.join(stateDir, FACTS_FILE), 'utf8')) as Partial<Pick<HostFacts, 'portIndexes' | 'networkZones'>>;
    return { portIndexes: data.portIndexes ?? {}, networkZones: data.networkZones ?? {} };
  } catch {
    return { portIndexes: {}, networkZones: {} };
  }
}
