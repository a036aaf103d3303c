// Side effects at the edge: running iproute2, nft, sysctl and friends,
// either in the agent's own network namespace ('') or in a named one.
//
// Why the two forms: `ip -n NS …` switches namespaces inside iproute2 itself
// and costs about as much as a plain `ip` (~3 ms), while everything else
// (nft, sysctl, conntrack, dnsmasq) needs `ip netns exec NS …` (~7–10 ms: a
// fresh mount namespace and a /sys remount). So iproute2 work is batched
// with `ip -n NS -batch -` and all other per-namespace work is folded into
// as few `ip netns exec` calls as possible.
import { spawn } from 'node:child_process';
import fs from 'node:fs';

/** Receives one line per change made to the host (and nothing else). */
export type Logger = (line: string) => void;

export interface RunResult { code: number; stdout: string; stderr: string }

export class CommandError extends Error {
  constructor(readonly argv: string[], readonly result: RunResult, message?: string) {
    super(message ?? `${argv.join(' ')}: exit ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`);
    this.name = 'CommandError';
  }
}

/** Runs argv, feeding `input` on stdin; never throws for a non-zero exit (callers decide). */
export function run(argv: string[], input?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({
      code: code ?? (signal ? 128 : 1),
      stdout: Buffer.concat(out).toString('utf8'),
      stderr: Buffer.concat(err).toString('utf8'),
    }));
    // EPIPE when the command exits before reading all of its input: the exit code tells.
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
  });
}

/** Like run, but a non-zero exit is an error. */
export async function runOk(argv: string[], input?: string): Promise<RunResult> {
  const r = await run(argv, input);
  if (r.code !== 0) throw new CommandError(argv, r);
  return r;
}

/** argv prefixed so that it runs inside `ns` ('' = the agent's own namespace). */
export const inNs = (ns: string, argv: string[]): string[] => (ns ? ['ip', 'netns', 'exec', ns, ...argv] : argv);

/** `ip [-n NS] args…` */
export const ipArgv = (ns: string, args: string[]): string[] => (ns ? ['ip', '-n', ns, ...args] : ['ip', ...args]);

/** `bridge [-n NS] args…` */
export const bridgeArgv = (ns: string, args: string[]): string[] => (ns ? ['bridge', '-n', ns, ...args] : ['bridge', ...args]);

/** Runs `sh -c script` inside ns: one namespace switch for many small reads or writes. */
export const shellIn = (ns: string, script: string, input?: string) => run(inNs(ns, ['sh', '-c', script]), input);

/** Quotes a word for sh (only when needed, so logs stay readable). */
export function shq(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Quotes a word for an iproute2 batch line (it splits on blanks and honours double quotes). */
export const batchWord = (word: string) => (/[\s"'\\]/.test(word) ? `"${word.replace(/(["\\])/g, '\\$1')}"` : word);

/**
 * Runs iproute2 (`ip` or `bridge`) command lines in one `-batch -` process.
 * Without -force the batch stops at the first failing line and says which
 * ("Command failed -:N"): we return N (1-based) so the caller can name the step.
 */
export async function batch(tool: 'ip' | 'bridge', ns: string, lines: string[]): Promise<{ ok: true } | { ok: false; line: number; result: RunResult }> {
  const argv = tool === 'ip' ? ipArgv(ns, ['-batch', '-']) : bridgeArgv(ns, ['-batch', '-']);
  const r = await run(argv, lines.join('\n') + '\n');
  if (r.code === 0) return { ok: true };
  const m = /Command failed -:(\d+)/.exec(r.stderr);
  return { ok: false, line: m ? Number(m[1]) : lines.length, result: r };
}

/** Names of all named network namespaces (`ip netns list`, which prints "name (id: N)"). */
export async function listNamespaces(): Promise<string[]> {
  const r = await runOk(['ip', 'netns', 'list']);
  return r.stdout.split('\n').map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
}

/** PIDs of the processes living in a named namespace. */
export async function namespacePids(ns: string): Promise<number[]> {
  const r = await run(['ip', 'netns', 'pids', ns]);
  if (r.code !== 0) return [];
  return r.stdout.split(/\s+/).filter(Boolean).map(Number).filter((n) => n > 0);
}

/**
 * Alive and not a zombie. Daemons (dnsmasq) are reparented to pid 1 once
 * their starter exits, and an init that is slow to reap (or never does, as in
 * some VM and container inits) leaves a zombie that kill(pid, 0) still finds.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    // "pid (comm) S …": the state follows the last ')'.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The command line of a live process, '' when it is gone (to tell our daemon from a reused pid). */
export function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

/** SIGTERM, wait up to `ms` for the exit, then SIGKILL. Unknown or gone pids are fine. */
export async function terminate(pids: number[], ms = 2000): Promise<void> {
  const live = pids.filter(isAlive);
  for (const pid of live) {
    try { process.kill(pid, 'SIGTERM'); } catch { /* already gone */ }
  }
  const deadline = Date.now() + ms;
  let left = live;
  while (left.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
    left = left.filter(isAlive);
  }
  for (const pid of left) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
  }
}

export function readPidFile(file: string): number | null {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}
