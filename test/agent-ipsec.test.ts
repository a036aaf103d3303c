// VPNaaS on a real data plane (root): router-like namespaces on a shared
// "internet" bridge with a LAN and a VM namespace behind each (notes §1);
// planIpsec + applyIpsec set up both sides from hand-built
// ModelIpsecConnections. Each router's default route points at another
// router's public address, so anything leaking in clear would really reach
// the other LAN: the captures prove it doesn't.
// Everything created here is named nvp-<rand>; after() stops every charon and
// tcpdump and deletes every namespace, also on failure.
import { loadPeerConf, startPeerCharon } from './support/strongswan-peer.ts';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ModelIpsecConnection } from '../src/agent/model.ts';
import { planIpsec } from '../src/agent/compile/ipsec.ts';
import { applyIpsec, charonPid, stopAllIpsec, type IpsecApplyResult } from '../src/agent/apply/ipsec.ts';
import { namespacePids, run, runOk, terminate } from '../src/agent/apply/exec.ts';

const isRoot = process.getuid?.() === 0;
const haveCharon = fs.existsSync('/usr/sbin/charon-systemd') && fs.existsSync('/usr/sbin/swanctl');
const rand = randomBytes(3).toString('hex');
const P = `nvp-${rand}`;
const NET = `${P}-net`;
const BRIDGE = `${P}br`;

interface Site { key: string; router: string; vm: string; id: string; pub: string; lanCidr: string; lanGw: string; vmIp: string; wan: string; stateDir: string }
const site = (key: string, n: number): Site => ({
  key, router: `${P}-r${key}`, vm: `${P}-v${key}`, id: `r000000${n}-0000-4000-8000-00000000000${n}`,
  pub: `203.0.113.${n}`, lanCidr: `10.${n}.0.0/24`, lanGw: `10.${n}.0.1`, vmIp: `10.${n}.0.2`, wan: `${P}${key}w`, stateDir: '',
});
const A = site('a', 1);
const B = site('b', 2);
const C = site('c', 3);
const O = site('o', 4); // the hand-configured "office router"
const SITES = [A, B, C, O];
let officeDir = '';
let officePid = 0;
const children: ChildProcess[] = [];

function conn(id: string, from: Site, to: Site, psk: string, over: Partial<ModelIpsecConnection> = {}): ModelIpsecConnection {
  return {
    id, vpnservice_id: `svc-${from.key}`, router_id: from.id, admin_state_up: true,
    peer_address: to.pub, peer_id: to.pub, local_cidrs: [from.lanCidr], peer_cidrs: [to.lanCidr], psk, mtu: 1400,
    initiator: 'bi-directional', dpd: { action: 'hold', interval: 5, timeout: 20 },
    ike: { ike_version: 'v2', auth_algorithm: 'sha256', encryption_algorithm: 'aes-128', pfs: 'group14', phase1_negotiation_mode: 'main', lifetime: { units: 'seconds', value: 3600 } },
    ipsec: { transform_protocol: 'esp', encapsulation_mode: 'tunnel', auth_algorithm: 'sha256', encryption_algorithm: 'aes-128', pfs: 'group14', lifetime: { units: 'seconds', value: 3600 } },
    ...over,
  };
}

/** One agent pass for one site: compile, the unreachable routes (applyPlan's job in the agent), applyIpsec. */
async function converge(s: Site, conns: ModelIpsecConnection[]): Promise<IpsecApplyResult> {
  const plan = planIpsec(conns, [{ router_id: s.id, namespace: s.router, gatewayIp: s.pub }], s.stateDir);
  const want = plan.routes.get(s.router) ?? [];
  const have = JSON.parse((await runOk(['ip', '-n', s.router, '-j', 'route', 'show', 'type', 'unreachable'])).stdout || '[]') as Array<{ dst: string }>;
  for (const r of have) if (!want.some((w) => w.destination === r.dst)) await runOk(['ip', '-n', s.router, 'route', 'del', 'unreachable', r.dst, 'metric', '4000']);
  for (const r of want) await runOk(['ip', '-n', s.router, 'route', 'replace', 'unreachable', r.destination, 'metric', String(r.metric)]);
  return applyIpsec(plan.instances, { stateDir: s.stateDir, initiateTimeoutMs: 1500 });
}

/** Converges every given site every 200 ms until `done` holds for their statuses; returns the elapsed ms. */
async function convergeUntil(sites: Array<[Site, ModelIpsecConnection[]]>, done: (statuses: Record<string, string>) => boolean, ms = 15000): Promise<number> {
  const t0 = Date.now();
  let statuses: Record<string, string> = {};
  while (Date.now() - t0 < ms) {
    statuses = {};
    for (const [s, c] of sites) Object.assign(statuses, (await converge(s, c)).statuses);
    if (done(statuses)) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`not converged after ${ms} ms: ${JSON.stringify(statuses)}`);
}

const ping = (from: Site, to: string, count = 1) => run(['ip', 'netns', 'exec', from.vm, 'ping', '-c', String(count), '-W', '1', '-i', '0.2', to]);

/** Captures on a router's internet-side veth while `fn` runs; returns tcpdump's lines. */
async function capture(s: Site, fn: () => Promise<unknown>): Promise<string> {
  const td = spawn('ip', ['netns', 'exec', s.router, 'tcpdump', '-l', '-n', '-i', s.wan, '-c', '50', 'udp port 4500 or icmp'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(td);
  let out = '';
  td.stdout!.on('data', (d) => (out += d));
  await new Promise<void>((resolve) => { td.stderr!.on('data', (d) => { if (String(d).includes('listening')) resolve(); }); setTimeout(resolve, 2000); });
  await fn();
  await new Promise((r) => setTimeout(r, 300));
  td.kill('SIGTERM');
  await new Promise((r) => td.once('exit', r));
  return out;
}

async function setupSite(s: Site) {
  s.stateDir = fs.mkdtempSync(path.join(os.tmpdir(), `${P}-${s.key}-`));
  for (const ns of [s.router, s.vm]) {
    await runOk(['ip', 'netns', 'add', ns]);
    await runOk(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  }
  await runOk(['ip', 'link', 'add', s.wan, 'netns', s.router, 'type', 'veth', 'peer', 'name', `${s.wan}p`, 'netns', NET]);
  await runOk(['ip', '-n', NET, 'link', 'set', `${s.wan}p`, 'master', BRIDGE, 'up']);
  await runOk(['ip', '-n', s.router, 'addr', 'add', `${s.pub}/24`, 'dev', s.wan]);
  await runOk(['ip', '-n', s.router, 'link', 'set', s.wan, 'up']);
  await runOk(['ip', 'link', 'add', `${P}${s.key}l`, 'netns', s.router, 'type', 'veth', 'peer', 'name', `${P}${s.key}v`, 'netns', s.vm]);
  await runOk(['ip', '-n', s.router, 'addr', 'add', `${s.lanGw}/24`, 'dev', `${P}${s.key}l`]);
  await runOk(['ip', '-n', s.router, 'link', 'set', `${P}${s.key}l`, 'up']);
  await runOk(['ip', '-n', s.vm, 'addr', 'add', `${s.vmIp}/24`, 'dev', `${P}${s.key}v`]);
  await runOk(['ip', '-n', s.vm, 'link', 'set', `${P}${s.key}v`, 'up']);
  await runOk(['ip', '-n', s.vm, 'route', 'add', 'default', 'via', s.lanGw]);
  await runOk(['ip', 'netns', 'exec', s.router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
}

/** Default routes that would carry a leak: A ↔ B, C → A, O → A; and the LAN routes clear traffic would need. */
async function leakyRoutes() {
  await runOk(['ip', '-n', A.router, 'route', 'add', 'default', 'via', B.pub]);
  await runOk(['ip', '-n', B.router, 'route', 'add', 'default', 'via', A.pub]);
  await runOk(['ip', '-n', C.router, 'route', 'add', 'default', 'via', A.pub]);
  await runOk(['ip', '-n', O.router, 'route', 'add', 'default', 'via', A.pub]);
  await runOk(['ip', '-n', A.router, 'route', 'add', C.lanCidr, 'via', C.pub]);
  await runOk(['ip', '-n', A.router, 'route', 'add', O.lanCidr, 'via', O.pub]);
}

describe('IPsec site-to-site with strongSwan (kernel-libipsec)', { skip: !isRoot || !haveCharon ? 'needs root and strongSwan' : false }, () => {
  before(async () => {
    await runOk(['ip', 'netns', 'add', NET]);
    await runOk(['ip', '-n', NET, 'link', 'add', BRIDGE, 'type', 'bridge']);
    await runOk(['ip', '-n', NET, 'link', 'set', BRIDGE, 'up']);
    for (const s of SITES) await setupSite(s);
    await leakyRoutes();
  });

  after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    for (const s of SITES) if (s.stateDir) await stopAllIpsec(s.stateDir);
    if (officePid) await terminate([officePid], 3000);
    for (const ns of [NET, ...SITES.flatMap((s) => [s.router, s.vm])]) {
      await terminate(await namespacePids(ns).catch(() => []), 2000);
      await run(['ip', 'netns', 'del', ns]);
    }
    for (const d of [...SITES.map((s) => s.stateDir), officeDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  const AB = 'c0000001-0000-4000-8000-0000000000ab';
  const BA = 'c0000002-0000-4000-8000-0000000000ba';
  let pidA = 0;

  it('wrong PSK: both sides DOWN, the failure in charon.log, nothing to the peer LAN in clear', async () => {
    const a = conn(AB, A, B, 'right-psk-0123456789');
    const b = conn(BA, B, A, 'wrong-psk-9876543210');
    await converge(B, [b]);
    const r = await converge(A, [a]);
    assert.equal(r.statuses[AB], 'DOWN');
    assert.deepEqual(r.pendingInitiators, [AB]);
    await new Promise((res) => setTimeout(res, 300));
    assert.equal((await converge(A, [a])).statuses[AB], 'DOWN');
    assert.equal((await converge(B, [b])).statuses[BA], 'DOWN');
    const logA = fs.readFileSync(path.join(A.stateDir, 'ipsec', A.id, 'charon.log'), 'utf8');
    const logB = fs.readFileSync(path.join(B.stateDir, 'ipsec', B.id, 'charon.log'), 'utf8');
    assert.match(logA + logB, /AUTHENTICATION_FAILED|AUTH_FAILED|authentication of .* failed/);
    // No secret in charon's log either (it never logs PSKs; make sure).
    assert.doesNotMatch(logA + logB, /psk-0123456789|psk-9876543210/);
    // Files: 0700 dir, 0600 strongswan.conf.
    const dir = path.join(A.stateDir, 'ipsec', A.id);
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(dir, 'strongswan.conf')).mode & 0o777, 0o600);
    const wire = await capture(A, async () => assert.notEqual((await ping(A, B.vmIp, 2)).code, 0));
    assert.doesNotMatch(wire, /ICMP echo/, 'no clear-text ICMP on the internet side');
    pidA = charonPid(dir)!;
    assert.ok(pidA > 0);
  });

  it('fixing the PSK brings the tunnel ACTIVE without restarting charon; ping over UDP/4500 only', async () => {
    const a = conn(AB, A, B, 'right-psk-0123456789');
    const b = conn(BA, B, A, 'right-psk-0123456789');
    const t0 = Date.now();
    const ms = await convergeUntil([[B, [b]], [A, [a]]], (s) => s[AB] === 'ACTIVE' && s[BA] === 'ACTIVE');
    assert.equal(charonPid(path.join(A.stateDir, 'ipsec', A.id)), pidA, 'same charon');
    let firstPing = 0;
    const wire = await capture(A, async () => {
      const p0 = Date.now();
      const r = await ping(A, B.vmIp, 3);
      firstPing = Date.now() - p0;
      assert.equal(r.code, 0, r.stdout + r.stderr);
    });
    assert.match(wire, /203\.0\.113\.1\.4500 > 203\.0\.113\.2\.4500/);
    assert.doesNotMatch(wire, /ICMP echo/);
    console.log(`# timing: PSK fixed → ACTIVE in ${ms} ms (${Date.now() - t0} ms incl. ping); 3 pings took ${firstPing} ms`);
  });

  it('a fresh two-site setup comes up within seconds (timing)', async () => {
    for (const s of [A, B]) await stopAllIpsec(s.stateDir);
    const a = conn(AB, A, B, 'fresh-psk-0123456789');
    const b = conn(BA, B, A, 'fresh-psk-0123456789');
    const t0 = Date.now();
    const ms = await convergeUntil([[B, [b]], [A, [a]]], (s) => s[AB] === 'ACTIVE' && s[BA] === 'ACTIVE', 10000);
    const p0 = Date.now();
    const r = await ping(A, B.vmIp, 1);
    assert.equal(r.code, 0);
    console.log(`# timing: from no charon to ACTIVE ${ms} ms; first ping ${Date.now() - p0} ms (total ${Date.now() - t0} ms)`);
  });

  it('a changed connection renegotiates: the old IKE_SA goes, a new one comes up ACTIVE', async () => {
    const sasOf = async () => (await run(['swanctl', '--list-sas', '--raw', '--uri', `unix://${path.join(A.stateDir, 'ipsec', A.id)}/charon.vici`])).stdout;
    const before = /uniqueid=(\d+)/.exec(await sasOf())?.[1];
    assert.ok(before);
    const a = conn(AB, A, B, 'fresh-psk-0123456789', { dpd: { action: 'restart', interval: 7, timeout: 30 } });
    const b = conn(BA, B, A, 'fresh-psk-0123456789');
    await convergeUntil([[A, [a]], [B, [b]]], (s) => s[AB] === 'ACTIVE' && s[BA] === 'ACTIVE');
    const after = await sasOf();
    assert.doesNotMatch(after, new RegExp(`uniqueid=${before} `));
    assert.equal((await ping(A, B.vmIp, 1)).code, 0);
  });

  it('the peer removing its connection tears the tunnel down: DOWN, traffic to the peer CIDR stops, never in clear; a router without VPN runs no charon', async () => {
    const a = conn(AB, A, B, 'fresh-psk-0123456789');
    const pidB = charonPid(path.join(B.stateDir, 'ipsec', B.id));
    assert.ok(pidB);
    await converge(B, []); // B no longer hosts VPN: charon stopped (its unload sent a DELETE first? SIGTERM does)
    assert.equal(charonPid(path.join(B.stateDir, 'ipsec', B.id)), null);
    assert.equal(fs.existsSync(path.join(B.stateDir, 'ipsec', B.id)), false);
    await convergeUntil([[A, [a]]], (s) => s[AB] === 'DOWN', 20000);
    const wire = await capture(A, async () => assert.notEqual((await ping(A, B.vmIp, 2)).code, 0));
    assert.doesNotMatch(wire, /ICMP echo/);
    // unload-conn on A: the connection is gone from charon, the route stays while any VPN config is there.
    await converge(A, []);
    assert.equal(charonPid(path.join(A.stateDir, 'ipsec', A.id)), null);
  });

  it('one service, two connections to two peers (one charon on A)', async () => {
    const AC = 'c0000003-0000-4000-8000-0000000000ac';
    const CA = 'c0000004-0000-4000-8000-0000000000ca';
    const a = [conn(AB, A, B, 'psk-ab-0123456789'), conn(AC, A, C, 'psk-ac-0123456789')];
    const b = [conn(BA, B, A, 'psk-ab-0123456789')];
    const c = [conn(CA, C, A, 'psk-ac-0123456789', { initiator: 'response-only' })];
    await convergeUntil([[B, b], [C, c], [A, a]], (s) => [AB, AC, BA, CA].every((id) => s[id] === 'ACTIVE'));
    assert.equal((await ping(A, B.vmIp, 2)).code, 0);
    assert.equal((await ping(A, C.vmIp, 2)).code, 0);
    assert.equal((await ping(C, A.vmIp, 2)).code, 0);
    const charons = (await namespacePids(A.router)).filter((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('charon-systemd'));
    assert.equal(charons.length, 1);
    // Removing one of the two connections unloads only it.
    const r = await converge(A, [a[0]]);
    assert.equal(r.statuses[AB], 'ACTIVE');
    assert.equal(r.statuses[AC], undefined);
    assert.equal((await ping(A, B.vmIp, 1)).code, 0);
    assert.notEqual((await ping(A, C.vmIp, 1)).code, 0);
    await converge(C, []);
    await converge(A, []);
    await converge(B, []);
  });

  for (const version of [2, 1] as const) {
    it(`interop with a hand-configured strongSwan "office router" over IKEv${version}`, async () => {
      if (!officeDir) {
        officeDir = fs.mkdtempSync(path.join(os.tmpdir(), `${P}-office-`));
        officePid = await startPeerCharon(officeDir, O.router);
      }
      // The office only responds: Nucleon's side must initiate.
      await loadPeerConf(officeDir, {
        name: 'nucleon', version, localAddr: O.pub, remoteAddr: A.pub, localId: 'office.example', remoteId: A.pub,
        proposals: 'aes256-sha1-modp2048', localTs: O.lanCidr, remoteTs: A.lanCidr, startAction: 'none', psk: 'office-psk-0123456789',
      });
      const AO = 'c0000005-0000-4000-8000-0000000000a0';
      const a = [conn(AO, A, O, 'office-psk-0123456789', {
        peer_id: 'office.example',
        ike: { ike_version: version === 1 ? 'v1' : 'v2', auth_algorithm: 'sha1', encryption_algorithm: 'aes-256', pfs: 'group14', phase1_negotiation_mode: 'main', lifetime: { units: 'seconds', value: 3600 } },
        ipsec: { transform_protocol: 'esp', encapsulation_mode: 'tunnel', auth_algorithm: 'sha1', encryption_algorithm: 'aes-256', pfs: 'group14', lifetime: { units: 'seconds', value: 3600 } },
      })];
      const ms = await convergeUntil([[A, a]], (s) => s[AO] === 'ACTIVE');
      const wire = await capture(A, async () => assert.equal((await ping(A, O.vmIp, 2)).code, 0));
      assert.match(wire, /4500/);
      assert.doesNotMatch(wire, /ICMP echo/);
      const sas = await run(['swanctl', '--list-sas', '--raw', '--uri', `unix://${officeDir}/charon.vici`]);
      assert.match(sas.stdout, new RegExp(`version=${version} state=ESTABLISHED`));
      console.log(`# timing: office IKEv${version} ACTIVE in ${ms} ms`);
      await converge(A, []);
    });
  }
});
