// VPNaaS end to end (root): Nucleon and its agent in this process, the
// agent's "host" a namespace (nvp-<rand>-host with br-ex), a tenant network
// behind a router with a gateway on br-ex and a sandbox VM on it, and a
// hand-configured strongSwan "office router" (its own namespace on br-ex,
// its own charon-systemd and swanctl.conf) with a LAN behind it.
// Everything goes through the API: policies, VPN service, connection with a
// wrong PSK (DOWN), the PSK fixed by an update (ACTIVE within seconds, no
// charon restart), a ping from the VM to the office LAN, and the connection
// deleted (charon stopped).
// Everything created here is named nvp-<rand>-…; after() removes it.
import { loadPeerConf, startPeerCharon } from './support/strongswan-peer.ts';
import { until } from '../src/util/until.ts';
import { expectStatus as ok } from './support/server.ts';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { startTestCloud, type ApiClient, type TestCloud } from './support/server.ts';
import { createAgent, type Agent } from '../src/agent/index.ts';
import type { HostConfig } from '../src/agent/model.ts';
import { routerNamespace } from '../src/agent/plan.ts';
import { charonPid } from '../src/agent/apply/ipsec.ts';
import { listNamespaces, namespacePids, run, runOk, terminate } from '../src/agent/apply/exec.ts';
import { createSandboxVm, deleteSandboxVm, sandboxDhcp } from '../src/agent/sandbox.ts';

const isRoot = process.getuid?.() === 0;
const haveCharon = fs.existsSync('/usr/sbin/charon-systemd') && fs.existsSync('/usr/sbin/swanctl');
const RAND = crypto.randomBytes(2).toString('hex');
const PREFIX = `nvp-${RAND}-`;
const HOST_NS = `${PREFIX}host`;
const OFFICE_NS = `${PREFIX}office`;
const OFFICE_VM_NS = `${PREFIX}officevm`;
const HOST_NAME = `${PREFIX}node`;
const OFFICE_IP = '203.0.113.50';
const OFFICE_LAN = '10.50.0.0/24';
const OFFICE_VM = '10.50.0.2';
const PSK = 'office-psk-0123456789';

const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), `${PREFIX}state-`));
const officeDir = path.join(stateDir, 'office');
const logFile = path.join(stateDir, 'agent.log');
let officePid = 0;

let cloud: TestCloud;
let agent: Agent | null = null;



async function buildMachine(): Promise<void> {
  for (const ns of [HOST_NS, OFFICE_NS, OFFICE_VM_NS]) await runOk(['ip', 'netns', 'add', ns]);
  await runOk(['ip', '-n', HOST_NS, '-batch', '-'], [
    'link set dev lo up',
    'link add br-ex type bridge',
    'link set dev br-ex up',
    `link add ${PREFIX}of type veth peer name wan netns ${OFFICE_NS}`,
    `link set dev ${PREFIX}of master br-ex`,
    `link set dev ${PREFIX}of up`,
  ].join('\n') + '\n');
  await runOk(['ip', '-n', OFFICE_NS, '-batch', '-'], [
    'link set dev lo up',
    `addr add ${OFFICE_IP}/24 dev wan`,
    'link set dev wan up',
    `link add lan type veth peer name eth0 netns ${OFFICE_VM_NS}`,
    'addr add 10.50.0.1/24 dev lan',
    'link set dev lan up',
  ].join('\n') + '\n');
  await runOk(['ip', '-n', OFFICE_VM_NS, '-batch', '-'], [
    'link set dev lo up',
    `addr add ${OFFICE_VM}/24 dev eth0`,
    'link set dev eth0 up',
    'route add default via 10.50.0.1',
  ].join('\n') + '\n');
  await runOk(['ip', 'netns', 'exec', OFFICE_NS, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
}

async function startOffice(gatewayIp: string, localCidr: string): Promise<void> {
  officePid = await startPeerCharon(officeDir, OFFICE_NS);
  await loadPeerConf(officeDir, {
    name: 'nucleon', version: 2, localAddr: OFFICE_IP, remoteAddr: gatewayIp, localId: OFFICE_IP, remoteId: gatewayIp,
    proposals: 'aes128-sha1-modp1536', localTs: OFFICE_LAN, remoteTs: localCidr, startAction: 'none', psk: PSK,
  });
}

async function cleanMachine(): Promise<void> {
  if (officePid) await terminate([officePid], 3000);
  const mine = (await listNamespaces()).filter((n) => n.startsWith(PREFIX));
  for (const ns of mine) {
    if (ns.includes('-vm')) { await deleteSandboxVm(ns).catch(() => {}); continue; }
    await terminate(await namespacePids(ns)).catch(() => {});
    await run(['ip', 'netns', 'del', ns]);
    fs.rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  }
  fs.rmSync(stateDir, { recursive: true, force: true });
}

function agentLogTail(lines = 40): string {
  try {
    return fs.readFileSync(logFile, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no agent log)';
  }
}

describe('VPNaaS end to end: API → agent → strongSwan (root)', { skip: !isRoot || !haveCharon ? 'needs root and strongSwan' : false }, () => {
  let admin: ApiClient;
  let alice: ApiClient;
  let routerId: string;
  let gatewayIp: string;
  let vmName: string;
  let connId: string;
  let serviceId: string;

  before(async () => {
    await buildMachine();
    cloud = await startTestCloud('sqlite');
    admin = cloud.api(cloud.adminToken);
    alice = cloud.api(await cloud.tokenFor('alice', 'member'));
    const config: HostConfig = {
      host: HOST_NAME, bridgeMappings: { public: 'br-ex' }, vlanInterfaces: {}, underlayIp: null, underlayInterface: null,
      networkNode: true, namespacePrefix: PREFIX, stateDir: path.join(stateDir, 'agent'),
    };
    agent = createAgent({
      store: cloud.nucleon.store, config, hostNamespace: HOST_NS, dataPlane: true, resyncIntervalMs: 3000, reportIntervalMs: 1000,
      secretKeyFile: path.join(cloud.dataDir, 'secret.key'),
      logger: pino({ level: 'debug' }, pino.destination({ dest: logFile, append: true, sync: true })),
    });
    await agent.start();

    const pub = (await ok(admin.post('/v2.0/networks', { network: {
      name: 'public', 'router:external': true, 'provider:network_type': 'flat', 'provider:physical_network': 'public',
    } }), 201)).network;
    await ok(admin.post('/v2.0/subnets', { subnet: {
      network_id: pub.id, ip_version: 4, cidr: '203.0.113.0/24', gateway_ip: '203.0.113.1', enable_dhcp: false,
      allocation_pools: [{ start: '203.0.113.10', end: '203.0.113.40' }],
    } }), 201);
    const net = (await ok(alice.post('/v2.0/networks', { network: { name: 'lan' } }), 201)).network;
    const subnet = (await ok(alice.post('/v2.0/subnets', { subnet: { network_id: net.id, ip_version: 4, cidr: '10.1.0.0/24' } }), 201)).subnet;
    const router = (await ok(alice.post('/v2.0/routers', { router: { name: 'r1', external_gateway_info: { network_id: pub.id } } }), 201)).router;
    routerId = router.id;
    gatewayIp = router.external_gateway_info.external_fixed_ips[0].ip_address;
    await ok(alice.put(`/v2.0/routers/${routerId}/add_router_interface`, { subnet_id: subnet.id }));
    const port = (await ok(alice.post('/v2.0/ports', { port: { network_id: net.id } }), 201)).port;
    vmName = `${PREFIX}vm0`;
    await createSandboxVm({ port: { id: port.id, mac_address: port.mac_address, mtu: 1450 }, name: vmName, hostNamespace: HOST_NS });
    await until('VM port ACTIVE', 15_000, async () => (await admin.get(`/v2.0/ports/${port.id}`)).body.port.status === 'ACTIVE');
    assert.ok(await sandboxDhcp(vmName, 10), 'VM leased');
    await startOffice(gatewayIp, '10.1.0.0/24');

    const ike = (await ok(alice.post('/v2.0/vpn/ikepolicies', { ikepolicy: { name: 'ike', pfs: 'group5', ike_version: 'v2' } }), 201)).ikepolicy;
    const ipsec = (await ok(alice.post('/v2.0/vpn/ipsecpolicies', { ipsecpolicy: { name: 'esp', pfs: 'group5' } }), 201)).ipsecpolicy;
    serviceId = (await ok(alice.post('/v2.0/vpn/vpnservices', { vpnservice: { name: 'vpn', router_id: routerId, subnet_id: subnet.id } }), 201)).vpnservice.id;
    connId = (await ok(alice.post('/v2.0/vpn/ipsec-site-connections', { ipsec_site_connection: {
      name: 'office', vpnservice_id: serviceId, ikepolicy_id: ike.id, ipsecpolicy_id: ipsec.id,
      peer_address: OFFICE_IP, peer_id: OFFICE_IP, peer_cidrs: [OFFICE_LAN], psk: 'wrong-psk-9876543210',
    } }), 201)).ipsec_site_connection.id;
  });

  after(async () => {
    await agent?.stop();
    await cloud?.close();
    await cleanMachine();
  });

  const status = async () => (await ok(alice.get(`/v2.0/vpn/ipsec-site-connections/${connId}`))).ipsec_site_connection.status as string;
  const instanceDir = () => path.join(stateDir, 'agent', 'ipsec', routerId);

  it('wrong PSK: the connection is DOWN, nothing leaves for the office LAN', async () => {
    await until('connection DOWN', 15_000, async () => (await status()) === 'DOWN').catch((e) => { throw new Error(`${e.message}\n${agentLogTail()}`); });
    const ns = routerNamespace(PREFIX, routerId);
    const routes = (await runOk(['ip', '-n', ns, 'route', 'show', 'type', 'unreachable'])).stdout;
    assert.match(routes, /10\.50\.0\.0\/24/);
    assert.notEqual((await run(['ip', 'netns', 'exec', vmName, 'ping', '-c1', '-W1', OFFICE_VM])).code, 0);
    assert.match(fs.readFileSync(path.join(officeDir, 'charon.log'), 'utf8'), /AUTH_FAILED|authentication of .* failed/);
    // The reason is in the agent's own log, in words an operator acts on — and never the PSK.
    const agentLog = await until('the failure in the agent log', 10_000, async () => {
      const text = fs.readFileSync(logFile, 'utf8');
      return /authentication failed/.test(text) ? text : null;
    }).catch((e) => { throw new Error(`${e.message}\n${agentLogTail()}`); });
    assert.match(agentLog, new RegExp(`ipsec: initiate ${connId} .*authentication failed`));
    assert.ok(!agentLog.includes('wrong-psk-9876543210') && !agentLog.includes(PSK), 'no PSK in the agent log');
  });

  it('the PSK fixed through the API: ACTIVE within seconds without restarting charon; the VM pings the office LAN', async () => {
    const pid = charonPid(instanceDir());
    assert.ok(pid);
    const t0 = Date.now();
    await ok(alice.put(`/v2.0/vpn/ipsec-site-connections/${connId}`, { ipsec_site_connection: { psk: PSK } }));
    await until('connection ACTIVE', 15_000, async () => (await status()) === 'ACTIVE').catch((e) => { throw new Error(`${e.message}\n${agentLogTail()}`); });
    const ms = Date.now() - t0;
    assert.equal(charonPid(instanceDir()), pid, 'same charon');
    const r = await run(['ip', 'netns', 'exec', vmName, 'ping', '-c2', '-W1', OFFICE_VM]);
    assert.equal(r.code, 0, r.stdout);
    const svc = (await ok(alice.get(`/v2.0/vpn/vpnservices/${serviceId}`))).vpnservice;
    assert.equal(svc.status, 'ACTIVE');
    console.log(`# timing: PSK update → connection ACTIVE in the API ${ms} ms`);
  });

  it('deleting the connection stops the router\'s charon', async () => {
    const pid = charonPid(instanceDir())!;
    await ok(alice.del(`/v2.0/vpn/ipsec-site-connections/${connId}`), 204);
    await until('charon stopped', 15_000, async () => charonPid(instanceDir()) === null && !fs.existsSync(instanceDir()));
    assert.notEqual((await run(['ip', 'netns', 'exec', vmName, 'ping', '-c1', '-W1', OFFICE_VM])).code, 0);
    assert.equal(fs.existsSync(`/proc/${pid}`) && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('charon'), false);
  });
});
