// VPNaaS apply: converge one charon-systemd per router namespace to the plan's
// IpsecInstances, over each instance's own vici socket.
//  - strongswan.conf (0600) in a 0700 directory; charon-systemd started in the
//    router namespace when absent (it writes no pid file, so several run at
//    once; notes §1). We record its pid ourselves.
//  - secrets (load-shared) and connections (load-conn) loaded every pass:
//    charon keeps an unchanged connection and its SAs as they are, and a new
//    PSK takes effect at the next IKE_AUTH without restarting anything.
//    Stale connections and secrets are unloaded (unload-conn tears their SAs
//    and trap policies down).
//  - DOWN initiator connections are initiated again (libipsec never initiates
//    from traffic, and a first attempt against a peer that had no config yet
//    is not retried by charon).
//  - instances no longer planned get SIGTERM (charon then removes ipsec0, its
//    routes and rule 220 itself).
// Secrets never appear in a log line or an error: only ids and charon's errmsg
// (which names connections, not keys).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { IpsecInstance } from '../plan.ts';
import { instanceStatuses, summariseSas, type IpsecStatus } from '../vpn/status.ts';
import { ViciClient, type ViciInputMessage, type ViciMessage } from '../vpn/vici.ts';
import { cmdline, isAlive, readPidFile, terminate, type Logger } from './exec.ts';

export const CHARON = '/usr/sbin/charon-systemd';

/** What charon says when a negotiation fails, in words an operator acts on. */
const FAILURE_REASONS: Array<[RegExp, string]> = [
  [/AUTHENTICATION_FAILED|authentication of .* failed|AUTH_FAILED/, 'authentication failed (pre-shared keys differ?)'],
  [/NO_PROPOSAL_CHOSEN|NO_PROP|no acceptable proposal/, 'no proposal chosen (policies differ)'],
  [/TS_UNACCEPTABLE|traffic selectors .* unacceptable/, 'traffic selectors unacceptable (subnets differ)'],
  [/giving up after \d+ retransmits|peer not responding/, 'the peer does not answer'],
];

/**
 * The newest recognized failure in the tail of a charon log (pure): the vici
 * initiate error alone only says that establishing failed, not why.
 */
export function negotiationFailure(logTail: string): string | null {
  const lines = logTail.split('\n').reverse();
  for (const line of lines) {
    for (const [re, reason] of FAILURE_REASONS) if (re.test(line)) return reason;
  }
  return null;
}

function charonLogTail(dir: string, bytes = 16_384): string {
  try {
    const file = path.join(dir, 'charon.log');
    const size = fs.statSync(file).size;
    const fd = fs.openSync(file, 'r');
    try {
      const buf = Buffer.alloc(Math.min(bytes, size));
      fs.readSync(fd, buf, 0, buf.length, size - buf.length);
      return buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return '';
  }
}

export interface IpsecApplyContext {
  /** The agent's state directory; instances live under <stateDir>/ipsec/<router id>. */
  stateDir: string;
  log?: Logger;
  /** How long one `initiate` may block (ms). Initiation continues in charon afterwards. */
  initiateTimeoutMs?: number;
  /** vici request timeout (ms). */
  viciTimeoutMs?: number;
}

export interface IpsecApplyResult {
  /** Per ipsec-site-connection id (every connection of every planned instance). */
  statuses: Record<string, IpsecStatus>;
  /** Initiator connections still DOWN: the agent re-runs this step soon while any is. */
  pendingInitiators: string[];
  /** Routers whose instance failed as a whole (charon not starting, vici not answering): id → reason. */
  errors: Record<string, string>;
}

/** Per instance dir: connection id → hash of the last loaded config (memory only; secrets are not hashed). */
const loaded = new Map<string, Map<string, string>>();
/**
 * Connections (dir/id) whose failed initiation was already logged: a peer that
 * is away for hours would otherwise log a line every retry (every ~2 s).
 * Cleared when the connection is ACTIVE again.
 */
const quiet = new Set<string>();

const sha = (v: unknown) => createHash('sha256').update(JSON.stringify(v)).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const socketPath = (dir: string) => path.join(dir, 'charon.vici');
const pidFile = (dir: string) => path.join(dir, 'charon.pid');

function writeIfChanged(file: string, contents: string, mode: number): boolean {
  let old: string | null = null;
  try { old = fs.readFileSync(file, 'utf8'); } catch { /* absent */ }
  if (old === contents) {
    fs.chmodSync(file, mode);
    return false;
  }
  // Written under a temporary name and renamed: charon never reads half a file.
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, contents, { mode });
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, file);
  return true;
}

/** The live charon of an instance dir, or null (a reused pid running something else does not count). */
export function charonPid(dir: string): number | null {
  const pid = readPidFile(pidFile(dir));
  if (pid === null || !isAlive(pid)) return null;
  return cmdline(pid).includes('charon-systemd') ? pid : null;
}

async function startCharon(inst: IpsecInstance, log: Logger): Promise<number> {
  try { fs.unlinkSync(socketPath(inst.dir)); } catch { /* absent */ }
  // detached: its own session (like `setsid`), so the agent's signals and exit
  // don't take it down. `ip netns exec` execs, so the pid is charon's own.
  const child = spawn('ip', ['netns', 'exec', inst.namespace, CHARON], {
    detached: true,
    stdio: 'ignore',
    env: { ...process.env, STRONGSWAN_CONF: path.join(inst.dir, 'strongswan.conf') },
  });
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start charon in ${inst.namespace}`);
  fs.writeFileSync(pidFile(inst.dir), `${pid}\n`, { mode: 0o600 });
  log(`ipsec: started charon (pid ${pid}) in ${inst.namespace}`);
  return pid;
}

async function connectVici(inst: IpsecInstance, pid: number, ctx: IpsecApplyContext): Promise<ViciClient> {
  // charon answers about 30 ms after its start (notes §1); allow 5 s.
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      return await ViciClient.connect(socketPath(inst.dir), { timeoutMs: ctx.viciTimeoutMs ?? 5000 });
    } catch (e) {
      if (!isAlive(pid)) throw new Error(`charon in ${inst.namespace} exited (see ${inst.dir}/charon.log)`);
      if (Date.now() > deadline) throw e;
      await sleep(20);
    }
  }
}

const asList = (v: ViciMessage[string] | undefined): string[] => (Array.isArray(v) ? v : typeof v === 'string' ? [v] : []);

/** Converges one instance; returns its statuses and initiators still down. */
async function applyInstance(inst: IpsecInstance, ctx: IpsecApplyContext, log: Logger): Promise<{ statuses: Record<string, IpsecStatus>; pending: string[] }> {
  fs.mkdirSync(inst.dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(inst.dir, 0o700);
  const confChanged = writeIfChanged(path.join(inst.dir, 'strongswan.conf'), inst.strongswanConf, 0o600);
  let pid = charonPid(inst.dir);
  if (pid !== null && confChanged) {
    log(`ipsec: strongswan.conf of ${inst.namespace} changed, restarting charon`);
    await terminate([pid], 5000);
    pid = null;
  }
  if (pid === null) {
    loaded.delete(inst.dir);
    pid = await startCharon(inst, log);
  }
  const vici = await connectVici(inst, pid, ctx);
  try {
    const known = loaded.get(inst.dir) ?? new Map<string, string>();
    loaded.set(inst.dir, known);
    const wanted = new Set(inst.connections.map((c) => c.id));

    // Stale connections first (their SAs and trap policies go), then stale secrets.
    const conns = asList((await vici.call('get-conns')).conns);
    for (const name of conns) {
      if (wanted.has(name)) continue;
      await vici.call('unload-conn', { name });
      known.delete(name);
      log(`ipsec: unloaded connection ${name} from ${inst.namespace}`);
    }
    const keys = asList((await vici.call('get-shared')).keys);
    const wantedKeys = new Set(inst.connections.map((c) => c.secret.id));
    for (const id of keys) if (!wantedKeys.has(id)) await vici.call('unload-shared', { id });

    const failed = new Set<string>();
    const fresh = new Set<string>();
    for (const c of inst.connections) {
      try {
        await vici.call('load-shared', c.secret as unknown as ViciInputMessage);
        const hash = sha(c.conn);
        const before = known.get(c.id);
        if (before !== undefined && before !== hash) {
          // Changed settings apply to new SAs only: drop the old ones (before
          // the load, whose start_action then negotiates with what the API
          // now says; terminating after it could kill that new SA).
          await vici.request('terminate', { ike: c.id, timeout: 0, force: 'yes' }).catch(() => undefined);
        }
        await vici.call('load-conn', c.conn as ViciInputMessage);
        if (before !== hash) {
          fresh.add(c.id);
          known.set(c.id, hash);
          log(`ipsec: loaded connection ${c.id} into ${inst.namespace}`);
        }
      } catch (e) {
        failed.add(c.id);
        known.delete(c.id);
        // Charon's errmsg names the connection or setting, never the key.
        log(`ipsec: connection ${c.id} in ${inst.namespace}: ${(e as Error).message}`);
      }
    }

    let events = (await vici.streamed('list-sas', 'list-sa')).events;
    const down = (id: string) => instanceStatuses(inst.connections, events, failed)[id] === 'DOWN';
    // Initiate DOWN initiators that have no IKE_SA at all (one that is
    // CONNECTING is left to finish), except ones just loaded: their
    // start_action is already initiating them.
    const sas = summariseSas(events);
    const toStart = inst.connections.filter((c) => c.initiate && !failed.has(c.id) && !fresh.has(c.id) && down(c.id)
      && (sas.get(c.id) ?? []).every((sa) => sa.ike === 'ESTABLISHED' && sa.children.length === 0));
    if (toStart.length) {
      const timeout = ctx.initiateTimeoutMs ?? 2000;
      await Promise.all(toStart.map(async (c) => {
        const say = (why: string) => {
          const key = `${inst.dir}/${c.id}`;
          if (quiet.has(key)) return;
          quiet.add(key);
          const reason = negotiationFailure(charonLogTail(inst.dir));
          log(`ipsec: initiate ${c.id} in ${inst.namespace}: ${why}${reason ? `: ${reason}` : ''} (retrying quietly until it is up; details in ${inst.dir}/charon.log)`);
        };
        // Each on its own connection: initiate blocks its vici connection until done or timed out.
        let v: ViciClient | null = null;
        try {
          v = await ViciClient.connect(socketPath(inst.dir), { timeoutMs: timeout + 2000 });
          const res = await v.request('initiate', { child: c.child, ike: c.id, timeout, 'init-limits': 'no', loglevel: -1 }, { timeoutMs: timeout + 2000 });
          if (res.success === 'no') say(String(res.errmsg ?? 'failed'));
        } catch (e) {
          say((e as Error).message);
        } finally {
          v?.close();
        }
      }));
      events = (await vici.streamed('list-sas', 'list-sa')).events;
    }
    const statuses = instanceStatuses(inst.connections, events, failed);
    for (const c of inst.connections) if (statuses[c.id] === 'ACTIVE') quiet.delete(`${inst.dir}/${c.id}`);
    const pending = inst.connections.filter((c) => c.initiate && statuses[c.id] === 'DOWN').map((c) => c.id);
    return { statuses, pending };
  } finally {
    vici.close();
  }
}

/** Stops charons of instance dirs no longer planned and removes their dirs. */
async function stopStale(planned: Set<string>, ctx: IpsecApplyContext, log: Logger): Promise<void> {
  const root = path.join(ctx.stateDir, 'ipsec');
  let entries: string[] = [];
  try { entries = fs.readdirSync(root); } catch { return; }
  for (const name of entries) {
    const dir = path.join(root, name);
    if (planned.has(dir)) continue;
    const pid = charonPid(dir);
    if (pid !== null) {
      await terminate([pid], 5000);
      log(`ipsec: stopped charon (pid ${pid}) of router ${name}`);
    }
    loaded.delete(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Converges every IPsec instance on this host. One instance failing does not
 * stop the others: its connections are reported ERROR and the reason is in
 * `errors`.
 */
export async function applyIpsec(instances: IpsecInstance[] | undefined, ctx: IpsecApplyContext): Promise<IpsecApplyResult> {
  const log = ctx.log ?? (() => {});
  const list = instances ?? [];
  const result: IpsecApplyResult = { statuses: {}, pendingInitiators: [], errors: {} };
  await stopStale(new Set(list.map((i) => i.dir)), ctx, log);
  await Promise.all(list.map(async (inst) => {
    try {
      const r = await applyInstance(inst, ctx, log);
      Object.assign(result.statuses, r.statuses);
      result.pendingInitiators.push(...r.pending);
    } catch (e) {
      result.errors[inst.router_id] = (e as Error).message;
      for (const c of inst.connections) result.statuses[c.id] = 'ERROR';
      log(`ipsec: router ${inst.router_id}: ${(e as Error).message}`);
    }
  }));
  result.pendingInitiators.sort();
  return result;
}

/** Stops every charon under stateDir (agent shutdown is NOT a reason: tunnels outlive the agent; tests use this). */
export async function stopAllIpsec(stateDir: string): Promise<void> {
  await stopStale(new Set(), { stateDir }, () => {});
}
