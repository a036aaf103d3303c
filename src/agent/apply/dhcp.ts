// dnsmasq per network: files into the server's directory, restart on change.
//
// Never SIGHUP: dnsmasq 2.90 (Debian 12) segfaults on SIGHUP once a lease was
// handed out while hosts entries use set: tags (see the data-plane notes), so
// any change is SIGTERM + start (~30 ms; leases survive in the lease file).
// A marker file records the hash of what the running instance was started
// with; the diff compares it with the plan's hash.
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import type { DhcpServer } from '../plan.ts';
import { inNs, readPidFile, terminate } from './exec.ts';

export const DHCP_MARKER = '.nucleon-dhcp.json';

export interface DhcpMarker {
  network_id: string;
  namespace: string;
  hash: string;
  pidFile: string;
}

/** The pid file dnsmasq is told to write: the plan's --pid-file, or one we add in dir. */
export function dhcpPidFile(dir: string, args: string[]): string {
  for (let i = 0; i < args.length; i++) {
    const m = /^--pid-file=(.+)$/.exec(args[i]);
    if (m) return m[1];
    if (args[i] === '--pid-file' && args[i + 1]) return args[i + 1];
  }
  return path.join(dir, 'dnsmasq.pid');
}

export function dnsmasqArgs(server: DhcpServer): string[] {
  const hasPid = server.args.some((a) => a === '--pid-file' || a.startsWith('--pid-file='));
  return hasPid ? server.args : [...server.args, `--pid-file=${dhcpPidFile(server.dir, server.args)}`];
}

/** Writes a file only when its contents differ, 0600, through a rename (dnsmasq never reads half a file). */
function writeFile0600(file: string, contents: string) {
  try {
    if (fs.readFileSync(file, 'utf8') === contents) {
      fs.chmodSync(file, 0o600);
      return;
    }
  } catch { /* absent */ }
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, contents, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export function writeDhcpFiles(server: DhcpServer) {
  fs.mkdirSync(server.dir, { recursive: true, mode: 0o700 });
  for (const [name, contents] of Object.entries(server.files)) {
    if (name.includes('/') || name.startsWith('.')) throw new Error(`DHCP file name ${JSON.stringify(name)} is not a plain name`);
    writeFile0600(path.join(server.dir, name), contents);
  }
}

/**
 * (Re)starts dnsmasq for a server: stops `oldPid` (SIGTERM, wait), writes the
 * files, starts `ip netns exec NS dnsmasq …` (it daemonizes; the parent exits
 * with dnsmasq's start-up verdict), waits for the pid file, records the marker.
 */
export async function startDhcp(server: DhcpServer, ns: string, oldPid: number | null): Promise<number> {
  if (oldPid) await terminate([oldPid]);
  writeDhcpFiles(server);
  const args = dnsmasqArgs(server);
  const pidFile = dhcpPidFile(server.dir, args);
  fs.rmSync(pidFile, { force: true });
  const errFile = path.join(server.dir, 'dnsmasq.err');
  const errFd = fs.openSync(errFile, 'w', 0o600);
  // stdout/stderr go to a file, not a pipe: the daemon would hold a pipe open forever.
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn(inNs(ns, ['dnsmasq', ...args])[0], inNs(ns, ['dnsmasq', ...args]).slice(1), { stdio: ['ignore', errFd, errFd] });
    child.on('error', reject);
    child.on('exit', (c, s) => resolve(c ?? (s ? 128 : 1)));
  }).finally(() => fs.closeSync(errFd));
  if (code !== 0) {
    throw new Error(`dnsmasq for network ${server.network_id} in ${ns} exited ${code}: ${fs.readFileSync(errFile, 'utf8').trim()}`);
  }
  let pid: number | null = null;
  for (let i = 0; i < 200 && pid === null; i++) {
    pid = readPidFile(pidFile);
    if (pid === null) await new Promise((r) => setTimeout(r, 5));
  }
  if (pid === null) throw new Error(`dnsmasq for network ${server.network_id} in ${ns} wrote no pid file ${pidFile}`);
  const marker: DhcpMarker = { network_id: server.network_id, namespace: ns, hash: server.hash, pidFile };
  writeFile0600(path.join(server.dir, DHCP_MARKER), JSON.stringify(marker) + '\n');
  return pid;
}

/** Stops a server whose network is gone and removes its directory. */
export async function stopDhcp(dir: string, pid: number | null): Promise<void> {
  if (pid) await terminate([pid]);
  fs.rmSync(dir, { recursive: true, force: true });
}
