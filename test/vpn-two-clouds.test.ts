// Two clouds joined by VPNaaS, as in the neutron-vpnaas walkthrough: each
// cloud is its own Nucleon (own data dir and SQLite database) with its own
// agent whose host is its own namespace (nvd-<rand>-hostA / -hostB, each with
// br-ex). The two br-ex are joined by a veth pair (nvd-<rand>-x in hostA ↔
// nvd-<rand>-y in hostB), so both clouds' router gateways sit on one
// 203.0.113.0/24 "internet"; each cloud's external subnet has its own
// allocation pool, since neither knows the other's addresses.
// Everything goes through each cloud's own API. The capture runs on the link
// between the clouds: the tunnel is UDP/4500 there, and the VMs' ICMP never
// crosses it in the clear.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import {
  agentLogTail, connectionStatus, createConnection, createExternal, createSite, createVpnSide, destroyPrefix, ping, pingOnce,
  serviceStatus, startVpnCloud, until, type Site, type VpnCloud, type VpnSide,
} from '../src/cli/demo-vpn.ts';
import { routerNamespace } from '../src/agent/plan.ts';
import { run, runOk } from '../src/agent/apply/exec.ts';

const isRoot = process.getuid?.() === 0;
const haveTools = ['/usr/sbin/charon-systemd', '/usr/sbin/swanctl', '/usr/bin/tcpdump'].every((f) => fs.existsSync(f));
const RAND = crypto.randomBytes(2).toString('hex');
const PREFIX = `nvd-${RAND}-`;
const LINK_A = `${PREFIX}x`;
const PSK = crypto.randomBytes(16).toString('hex');

describe('VPNaaS between two clouds, each its own Nucleon and agent (root)', { skip: !isRoot || !haveTools ? 'needs root, strongSwan and tcpdump' : false }, () => {
  let A: VpnCloud;
  let B: VpnCloud;
  let siteA: Site;
  let siteB: Site;
  let vpnA: VpnSide;
  let vpnB: VpnSide;
  let connA: string;
  let connB: string;

  before(async () => {
    A = await startVpnCloud({ name: 'A', prefix: `${PREFIX}A-`, hostNs: `${PREFIX}hostA` });
    B = await startVpnCloud({ name: 'B', prefix: `${PREFIX}B-`, hostNs: `${PREFIX}hostB` });
    // The "internet" between the clouds: a cable from one br-ex to the other.
    await runOk(['ip', '-n', A.hostNs, 'link', 'add', LINK_A, 'type', 'veth', 'peer', 'name', `${PREFIX}y`, 'netns', B.hostNs]);
    await runOk(['ip', '-n', A.hostNs, '-batch', '-'], `link set dev ${LINK_A} master br-ex\nlink set dev ${LINK_A} up\n`);
    await runOk(['ip', '-n', B.hostNs, '-batch', '-'], `link set dev ${PREFIX}y master br-ex\nlink set dev ${PREFIX}y up\n`);
    const extA = await createExternal(A, { start: '203.0.113.10', end: '203.0.113.49' });
    const extB = await createExternal(B, { start: '203.0.113.50', end: '203.0.113.99' });
    siteA = await createSite(A, { name: 'a', cidr: '10.10.10.0/24', externalId: extA, vm: `${PREFIX}vmA` });
    siteB = await createSite(B, { name: 'b', cidr: '20.20.20.0/24', externalId: extB, vm: `${PREFIX}vmB` });
    vpnA = await createVpnSide(A, siteA, siteB.cidr);
    vpnB = await createVpnSide(B, siteB, siteA.cidr);
  });

  after(async () => {
    await A?.close();
    await B?.close();
    await destroyPrefix(PREFIX);
  });

  it('the gateways reach each other over the shared external network, the VMs do not (yet)', async () => {
    // until: the other cloud's router may still be getting its gateway plugged.
    await until('router A → gateway B', 15_000, () => pingOnce(routerNamespace(`${PREFIX}A-`, siteA.routerId), siteB.gatewayIp, 0.5));
    assert.equal(await pingOnce(siteA.vm, siteB.vmIp), false);
  });

  it('a connection on each side, each through its own cloud\'s API: both ACTIVE', async () => {
    connA = await createConnection(A, vpnA, { name: 'to-cloud-b', peerAddress: siteB.gatewayIp, psk: PSK });
    connB = await createConnection(B, vpnB, { name: 'to-cloud-a', peerAddress: siteA.gatewayIp, psk: PSK });
    await until('both connections ACTIVE', 30_000, async () => (await connectionStatus(A, connA)) === 'ACTIVE' && (await connectionStatus(B, connB)) === 'ACTIVE', 200)
      .catch((e) => { throw new Error(`${e.message}\nA: ${agentLogTail(A, 15)}\nB: ${agentLogTail(B, 15)}`); });
    await until('both services ACTIVE', 10_000, async () => (await serviceStatus(A, vpnA.serviceId)) === 'ACTIVE' && (await serviceStatus(B, vpnB.serviceId)) === 'ACTIVE', 200);
  });

  it('VM A pings VM B and back; on the link between the clouds only UDP/4500, never the inner ICMP', async () => {
    // Started before the pings; -c bounds it, the kill below ends it if fewer packets come.
    const cap = spawn('ip', ['netns', 'exec', A.hostNs, 'tcpdump', '-lni', LINK_A, '-c', '40', 'udp port 4500 or icmp'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let lines = '';
    let errs = '';
    cap.stdout.on('data', (d: Buffer) => { lines += d.toString(); });
    cap.stderr.on('data', (d: Buffer) => { errs += d.toString(); });
    const done = new Promise<void>((r) => cap.on('close', () => r()));
    try {
      await until('tcpdump listening', 5000, async () => errs.includes('listening on'));
      const ab = await ping(siteA.vm, siteB.vmIp, 5);
      assert.ok(ab.ok && / 0% packet loss/.test(ab.output), ab.output);
      const ba = await ping(siteB.vm, siteA.vmIp, 5);
      assert.ok(ba.ok && / 0% packet loss/.test(ba.output), ba.output);
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      cap.kill('SIGINT');
      await done;
    }
    assert.match(lines, /\.4500 > .*UDP/, lines);
    assert.doesNotMatch(lines, /(10\.10\.10\.\d+ > 20\.20\.20\.\d+|20\.20\.20\.\d+ > 10\.10\.10\.\d+)/, lines);
    assert.doesNotMatch(lines, /ICMP echo/, lines);
  });

  it('deleting cloud A\'s connection tears the tunnel down: the pings stop', async () => {
    await A.member.del(`/v2.0/vpn/ipsec-site-connections/${connA}`);
    await until('tunnel down (no reply from VM B)', 15_000, async () => !(await pingOnce(siteA.vm, siteB.vmIp, 0.5)), 200);
    // Torn down, not just one way: nothing from B gets to A either, and A's router has no charon left.
    assert.equal(await pingOnce(siteB.vm, siteA.vmIp), false);
    const ns = routerNamespace(`${PREFIX}A-`, siteA.routerId);
    await until('charon gone from router A', 15_000, async () => !(await run(['ip', 'netns', 'pids', ns])).stdout.trim().split('\n')
      .filter(Boolean).some((pid) => { try { return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('charon'); } catch { return false; } }));
  });
});
