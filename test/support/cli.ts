// Nucleon as a user meets it from a shell: `nucleon` as a child process, and
// Debian's real `openstack` CLI (python3-openstackclient) driven through a
// clouds.yaml. Shared by the CLI suites; temp dirs and children are cleaned up
// when the test file ends.
import { after } from 'node:test';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Json } from './server.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI_TIMEOUT_MS = 90_000;
export const START_TIMEOUT_MS = 60_000;
export const STOP_TIMEOUT_MS = 5_000;
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The environment of a user with no OpenStack settings of their own. */
export const BASE_ENV: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.startsWith('OS_') && k !== 'NUCLEON_ADMIN_PASSWORD'),
);

const tempDirs: string[] = [];
export function tempDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(d);
  return d;
}

// ---- `nucleon` as a child process ----

export interface Served {
  proc: ChildProcess;
  identityUrl: string;
  networkUrl: string;
  cloudsYaml: string;
  output(): string;
  /** SIGTERM; resolves with how the process ended and how long it took. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

const children = new Set<ChildProcess>();
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
});

export function nucleon(args: string[]): ChildProcess {
  const proc = spawn(process.execPath, [path.join(ROOT, 'bin/nucleon.js'), ...args], {
    cwd: ROOT, env: BASE_ENV, stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  return proc;
}

export function exited(proc: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode });
  return new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
}

/** Runs a short `nucleon` command to its end. */
export async function runNucleon(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = nucleon(args);
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d) => { stdout += d; });
  proc.stderr!.on('data', (d) => { stderr += d; });
  const timer = setTimeout(() => proc.kill('SIGKILL'), START_TIMEOUT_MS);
  const { code } = await exited(proc);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** `nucleon serve ARGS`, resolved once it has printed where it listens and where clouds.yaml is. */
export async function serve(args: string[]): Promise<Served> {
  // These suites test the APIs; the agent would wire this machine's own root
  // namespace (tests touch only namespaces they make), so it stays off here.
  const proc = nucleon(['serve', '--no-agent', ...args]);
  let out = '';
  proc.stdout!.on('data', (d) => { out += d; });
  proc.stderr!.on('data', (d) => { out += d; });
  const ready = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nucleon serve printed no clouds.yaml line in ${START_TIMEOUT_MS} ms:\n${out}`)), START_TIMEOUT_MS);
    const check = () => {
      const m = /identity:\s+(http\S+)\/v3\s[\s\S]*network:\s+(http\S+)\s[\s\S]*clouds\.yaml:\s+(\S+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(m); }
    };
    proc.stdout!.on('data', check);
    proc.once('exit', (code, signal) => { clearTimeout(timer); reject(new Error(`nucleon serve exited (${code ?? signal}) before it was ready:\n${out}`)); });
  });
  return {
    proc,
    identityUrl: ready[1],
    networkUrl: ready[2],
    cloudsYaml: ready[3],
    output: () => out,
    async stop() {
      const t0 = Date.now();
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
      const end = await exited(proc);
      clearTimeout(timer);
      return { ...end, ms: Date.now() - t0 };
    },
  };
}

// ---- the openstack CLI ----

export interface CliResult { code: number; stdout: string; stderr: string; json: Json }
/** How many CLI calls this test file made (the CLI is slow: keep the count bounded). */
export let cliCalls = 0;
let cliHome: string | undefined;

/**
 * `openstack --os-cloud CLOUD ARGS` with OS_CLIENT_CONFIG_FILE=FILE. Output is
 * JSON unless the command prints nothing (set, delete, role add). Fails the
 * test with the CLI's own error unless `fails` is set.
 */
export function openstack(file: string, cloud: string, args: string[], opts: { fails?: boolean } = {}): Promise<CliResult> {
  cliCalls++;
  cliHome ??= tempDir('nucleon-cli-home-');
  const home = cliHome;
  return new Promise((resolve, reject) => {
    execFile('openstack', ['--os-cloud', cloud, ...args], {
      env: { ...BASE_ENV, OS_CLIENT_CONFIG_FILE: file, HOME: home },
      timeout: CLI_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024,
    }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      const what = `openstack ${args.join(' ')}`;
      if ((err as { code?: string } | null)?.code === 'ENOENT') return reject(new Error('the openstack CLI is not installed: run scripts/install-deps.sh'));
      if (err && (err as { killed?: boolean }).killed) return reject(new Error(`${what}: no answer within ${CLI_TIMEOUT_MS} ms\n${stderr}`));
      if (opts.fails && code === 0) return reject(new Error(`${what} should have failed but printed:\n${stdout}`));
      if (!opts.fails && code !== 0) return reject(new Error(`${what} failed (exit ${code}):\n${stderr}${stdout}`));
      let json: Json = null;
      if (stdout.trim()) {
        try {
          json = JSON.parse(stdout);
        } catch {
          json = null;
        }
      }
      resolve({ code, stdout, stderr, json });
    });
  });
}

export function writeCloud(file: string, cloud: string, authUrl: string, user: string, password: string, project: string) {
  fs.writeFileSync(file, [
    'clouds:',
    `  ${cloud}:`,
    '    auth:',
    `      auth_url: ${JSON.stringify(authUrl)}`,
    `      username: ${JSON.stringify(user)}`,
    `      password: ${JSON.stringify(password)}`,
    `      project_name: ${JSON.stringify(project)}`,
    '      user_domain_name: "Default"',
    '      project_domain_name: "Default"',
    '    region_name: "RegionOne"',
    '    identity_api_version: 3',
    '',
  ].join('\n'), { mode: 0o600 });
}

