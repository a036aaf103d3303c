// VPNaaS benchmark (root only): (a) how long from creating an
// ipsec-site-connection through the API (the second side's; the first one
// already exists) until a VM on one side first pings a VM on the other through
// the tunnel; (b) what a bulk TCP transfer gets through Nucleon's tunnel, next
// to the same transfer without a tunnel (router to router over the same
// external bridge) and through a strongSwan libipsec tunnel configured by hand
// between the same two router namespaces (same proposals) — libipsec does ESP
// in userspace, so that hand tunnel is the ceiling, not the plain path.
//
//   npm run bench:vpn
//   npm run bench:vpn -- --tries 5 --seconds 3
//
// The topology is the one `nucleon demo vpn` builds (one in-process Nucleon,
// its agent on a host namespace, two routers and VMs). Everything on the
// machine is named nbv-<rand>-…, removed at the end (also on failure or Ctrl-C).
// The hand-configured peer is the tests' (test/support/strongswan-peer.ts): one recipe for both.
import { loadPeerConf, startPeerCharon } from '../test/support/strongswan-peer.ts';
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import {
  connectionStatus, createConnection, createExternal, createSite, createVpnSide, destroyPrefix, pingOnce, startVpnCloud, until,
  type Site, type VpnCloud,
} from '../src/cli/demo-vpn.ts';
import { routerNamespace } from '../src/agent/plan.ts';
import { namespacePids, run, terminate } from '../src/agent/apply/exec.ts';
import { median, ms, printMachine, printTargets } from './lib.ts';

const { values: args } = parseArgs({
  options: {
    tries: { type: 'string', default: '10' },
    seconds: { type: 'string', default: '5' },
  },
});
const TRIES = Number(args.tries);
const SECONDS = Number(args.seconds);
const TARGETS = { firstPingMs: 2000, ratioToHandTunnel: 0.8 };

const RAND = crypto.randomBytes(2).toString('hex');
const PREFIX = `nbv-${RAND}-`;
const PSK = crypto.randomBytes(16).toString('hex');
const PORT = 5201;
const handDir = fs.mkdtempSync(path.join(os.tmpdir(), `${PREFIX}hand-`));

// ------------------------------------------------------------ TCP transfer

// A sink that counts bytes from the first to the last one received (so the
// connect and the close are not in the figure), and a source that writes 64 KiB
// chunks for a fixed time. python3: present wherever strongSwan is, and fast
// enough that the network, not the tool, is the limit (checked on the plain path).
const SINK = `
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1)
print("ready", flush=True)
c, _ = s.accept(); n = 0; t0 = None; t1 = None
buf = bytearray(1 << 18)
while True:
    k = c.recv_into(buf)
    if not k: break
    t1 = time.monotonic()
    if t0 is None: t0 = t1
    n += k
print(n, (t1 - t0) if t0 else 0, flush=True)
`;
const SOURCE = `
import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
buf = b"x" * 65536; end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end: c.sendall(buf)
c.shutdown(socket.SHUT_WR); c.recv(1); c.close()
`;

/** Mbit/s of one TCP stream from namespace `from` to `toIp` (a sink in namespace `to`). */
async function throughput(from: string, to: string, toIp: string): Promise<number> {
  const sink = spawn('ip', ['netns', 'exec', to, 'python3', '-c', SINK, toIp, String(PORT)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  sink.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  sink.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<void>((r) => sink.on('close', () => r()));
  try {
    await until('sink ready', 5000, async () => out.includes('ready'), 20);
    const src = await run(['ip', 'netns', 'exec', from, 'python3', '-c', SOURCE, toIp, String(PORT), String(SECONDS)]);
    if (src.code !== 0) throw new Error(`TCP source ${from} → ${toIp}: ${src.stderr.trim()}`);
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  } finally {
    if (sink.exitCode === null) sink.kill();
  }
  const m = /^(\d+) ([\d.]+)$/m.exec(out);
  if (!m || Number(m[2]) <= 0) throw new Error(`TCP sink in ${to}: ${out.trim()}`);
  return (Number(m[1]) * 8) / Number(m[2]) / 1e6;
}

// ------------------------------------------------- hand-configured tunnel

/** charon-systemd with a swanctl.conf written by hand, in a router namespace (as in linux-dataplane.md §1). */
async function handCharon(ns: string, name: string, me: Site, peer: Site, initiate: boolean): Promise<number> {
  const dir = path.join(handDir, name);
  const pid = await startPeerCharon(dir, ns);
  // The proposals Nucleon derives from the default policies (aes-128, sha1, group14), so only the configuration path differs.
  await loadPeerConf(dir, {
    name: 'peer', version: 2, localAddr: me.gatewayIp, remoteAddr: peer.gatewayIp, localId: me.gatewayIp, remoteId: peer.gatewayIp,
    proposals: 'aes128-sha1-modp2048', localTs: me.cidr, remoteTs: peer.cidr, startAction: initiate ? 'start' : 'none', psk: PSK,
  });
  return pid;
}

const hasCharon = async (ns: string) => {
  for (const pid of await namespacePids(ns)) {
    try {
      if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('charon')) return true;
    } catch { /* gone */ }
  }
  return false;
};

// ------------------------------------------------------------------- main

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error('bench:vpn needs root (namespaces, strongSwan)');
    process.exitCode = 2;
    return;
  }
  printMachine('bench:vpn — VPNaaS: API call to first ping through the tunnel, and TCP throughput (SQLite, agent in-process)');
  let cloud: VpnCloud | null = null;
  const handPids: number[] = [];
  let cleaning: Promise<void> | null = null;
  const cleanup = () => (cleaning ??= (async () => {
    await terminate(handPids).catch(() => {});
    await cloud?.close();
    await destroyPrefix(PREFIX);
    fs.rmSync(handDir, { recursive: true, force: true });
  })());
  const onSignal = () => { void cleanup().finally(() => process.exit(130)); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    cloud = await startVpnCloud({ name: 'bench', prefix: PREFIX, hostNs: `${PREFIX}host` });
    const c = cloud;
    const ext = await createExternal(c, { start: '203.0.113.10', end: '203.0.113.100' });
    const a = await createSite(c, { name: 'a', cidr: '10.10.10.0/24', externalId: ext, vm: `${PREFIX}vmA` });
    const b = await createSite(c, { name: 'b', cidr: '20.20.20.0/24', externalId: ext, vm: `${PREFIX}vmB` });
    const va = await createVpnSide(c, a, b.cidr);
    const vb = await createVpnSide(c, b, a.cidr);
    const nsA = routerNamespace(PREFIX, a.routerId);
    const nsB = routerNamespace(PREFIX, b.routerId);
    const connA = await createConnection(c, va, { name: 'a-to-b', peerAddress: b.gatewayIp, psk: PSK });

    // (a) Side B's connection created → first reply from VM B to VM A's ping.
    // Between tries the connection is deleted and B's charon gone, so every
    // try includes starting charon, IKE and the CHILD_SA, as for a new tunnel.
    const times: number[] = [];
    let connB = '';
    for (let i = 0; i < TRIES; i++) {
      const t0 = performance.now();
      connB = await createConnection(c, vb, { name: 'b-to-a', peerAddress: a.gatewayIp, psk: PSK });
      await until('first ping through the tunnel', 30_000, () => pingOnce(a.vm, b.vmIp, 0.2), 0);
      times.push(performance.now() - t0);
      if (i === TRIES - 1) break;
      await c.member.del(`/v2.0/vpn/ipsec-site-connections/${connB}`);
      await until('B\'s charon stopped', 15_000, async () => !(await hasCharon(nsB)), 50);
      await until('tunnel down', 15_000, async () => !(await pingOnce(a.vm, b.vmIp, 0.2)), 50);
    }
    const p50 = median(times);
    console.log(`\n(a) connection created (API) → first ping VM A → VM B, ${TRIES} tries`);
    console.log(`    p50 ${ms(p50)}, min ${ms(Math.min(...times))}, max ${ms(Math.max(...times))}`);

    // (b) throughput, one TCP stream, receiver-side count.
    await until('both connections ACTIVE', 15_000, async () =>
      (await connectionStatus(c, connA)) === 'ACTIVE' && (await connectionStatus(c, connB)) === 'ACTIVE', 100);
    const nucleonTunnel = await throughput(a.vm, b.vm, b.vmIp);
    const plain = await throughput(nsA, nsB, b.gatewayIp);
    // The hand tunnel replaces Nucleon's in the same router namespaces: Nucleon's connections go first (its charons stop).
    await c.member.del(`/v2.0/vpn/ipsec-site-connections/${connB}`);
    await c.member.del(`/v2.0/vpn/ipsec-site-connections/${connA}`);
    await until('Nucleon\'s charons stopped', 15_000, async () => !(await hasCharon(nsA)) && !(await hasCharon(nsB)), 50);
    handPids.push(await handCharon(nsB, 'b', b, a, false));
    handPids.push(await handCharon(nsA, 'a', a, b, true));
    await until('hand tunnel up', 20_000, () => pingOnce(a.vm, b.vmIp, 0.2), 0);
    const hand = await throughput(a.vm, b.vm, b.vmIp);
    const ratio = nucleonTunnel / hand;
    const mbit = (x: number) => `${x.toFixed(0)} Mbit/s`;
    console.log(`\n(b) one TCP stream for ${SECONDS} s, VM A → VM B unless said`);
    console.log(`    through Nucleon's tunnel (VPNaaS via the API)      ${mbit(nucleonTunnel).padStart(12)}`);
    console.log(`    through a hand-configured libipsec tunnel          ${mbit(hand).padStart(12)}   Nucleon/hand ${(ratio * 100).toFixed(0)}%`);
    console.log(`    no tunnel: router A → gateway B on br-ex           ${mbit(plain).padStart(12)}   tunnel/plain ${(nucleonTunnel / plain * 100).toFixed(0)}%`);
    console.log('');
    printTargets('targets', [
      [`first ping after the API call, p50 < ${TARGETS.firstPingMs} ms`, ms(p50), p50 < TARGETS.firstPingMs],
      [`tunnel ≥ ${TARGETS.ratioToHandTunnel * 100}% of hand-configured libipsec`, `${(ratio * 100).toFixed(0)}%`, ratio >= TARGETS.ratioToHandTunnel],
    ]);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
}

main().catch((e) => {
  console.error(`bench:vpn failed: ${e instanceof Error ? e.stack : String(e)}`);
  process.exitCode = 1;
});
