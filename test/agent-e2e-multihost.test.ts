// Several hosts on one machine (root only): a network node and two compute
// nodes, each a network namespace with its own in-process agent, joined by a
// VXLAN underlay (a bridge in an underlay namespace, 192.168.77.0/24). The
// network node also has br-ex and an "internet" namespace behind it. VMs on
// the compute nodes get their addresses from the network node's DHCP server,
// reach each other across hosts, and go out through the network node's router.
//
// Everything is named nag-<rand>-… and removed in after(), also on failure.
// Each agent has its own namespace prefix: agents delete namespaces they own
// and no longer plan, so two agents must never share one.
import { until } from '../src/util/until.ts';
import { expectStatus as ok } from './support/server.ts';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { startTestCloud, type ApiClient, type Json, type TestCloud } from './support/server.ts';
import { createAgent, type Agent } from '../src/agent/index.ts';
import type { HostConfig } from '../src/agent/model.ts';
import { listNamespaces, namespacePids, run, runOk, terminate } from '../src/agent/apply/exec.ts';
import { createSandboxVm, deleteSandboxVm, sandboxDhcp } from '../src/agent/sandbox.ts';

const isRoot = process.getuid?.() === 0;
const RAND = crypto.randomBytes(2).toString('hex');
const PREFIX = `nag-${RAND}-`;
const UNDERLAY_NS = `${PREFIX}ul`;
const INET_NS = `${PREFIX}inet`;
const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), `${PREFIX}mh-`));
const logFile = path.join(stateDir, 'agents.log');

interface Host { name: string; ns: string; underlayIp: string; networkNode: boolean; agent?: Agent }
const HOSTS: Host[] = [
  { name: `${PREFIX}net`, ns: `${PREFIX}h0`, underlayIp: '192.168.77.1', networkNode: true },
  { name: `${PREFIX}cmp1`, ns: `${PREFIX}h1`, underlayIp: '192.168.77.2', networkNode: false },
  { name: `${PREFIX}cmp2`, ns: `${PREFIX}h2`, underlayIp: '192.168.77.3', networkNode: false },
];
const [NETWORK_NODE, COMPUTE1, COMPUTE2] = HOSTS;

const sh = (argv: string[], input?: string) => runOk(argv, input);
const batch = (ns: string, lines: string[]) => sh(['ip', '-n', ns, '-batch', '-'], lines.join('\n') + '\n');

/** The underlay bridge, a leg into it from every host, br-ex and the internet on the network node. */
async function buildMachine(): Promise<void> {
  await sh(['ip', 'netns', 'add', UNDERLAY_NS]);
  await batch(UNDERLAY_NS, ['link set dev lo up', 'link add ul type bridge', 'link set dev ul up']);
  for (const [i, h] of HOSTS.entries()) {
    await sh(['ip', 'netns', 'add', h.ns]);
    await batch(h.ns, [
      'link set dev lo up',
      `link add eth-ul type veth peer name ${PREFIX}u${i} netns ${UNDERLAY_NS}`,
      `addr add ${h.underlayIp}/24 dev eth-ul`,
      'link set dev eth-ul up',
    ]);
    await batch(UNDERLAY_NS, [`link set dev ${PREFIX}u${i} master ul`, `link set dev ${PREFIX}u${i} up`]);
  }
  await sh(['ip', 'netns', 'add', INET_NS]);
  await batch(NETWORK_NODE.ns, [
    'link add br-ex type bridge', 'link set dev br-ex up',
    `link add ${PREFIX}ex type veth peer name eth0 netns ${INET_NS}`, `link set dev ${PREFIX}ex master br-ex`, `link set dev ${PREFIX}ex up`,
  ]);
  await batch(INET_NS, ['link set dev lo up', 'addr add 198.51.100.10/32 dev lo', 'addr add 203.0.113.1/24 dev eth0', 'link set dev eth0 up']);
}

async function cleanMachine(): Promise<void> {
  for (const ns of (await listNamespaces()).filter((n) => n.startsWith(PREFIX))) {
    if (ns.includes('-vm')) { await deleteSandboxVm(ns).catch(() => {}); continue; }
    await terminate(await namespacePids(ns)).catch(() => {});
    await run(['ip', 'netns', 'del', ns]);
    fs.rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  }
  fs.rmSync(stateDir, { recursive: true, force: true });
}

function hostConfig(h: Host): HostConfig {
  return {
    host: h.name, bridgeMappings: h.networkNode ? { public: 'br-ex' } : {}, vlanInterfaces: {},
    underlayIp: h.underlayIp, underlayInterface: 'eth-ul', networkNode: h.networkNode,
    // One prefix per agent: an agent deletes the namespaces of its prefix that it does not plan.
    namespacePrefix: `${h.ns}-`, stateDir: path.join(stateDir, h.ns),
  };
}

async function ping(ns: string, ip: string): Promise<boolean> {
  return (await run(['ip', 'netns', 'exec', ns, 'ping', '-n', '-c1', '-W1', ip])).code === 0;
}

async function pingsWithin(ns: string, ip: string, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  do {
    if (await ping(ns, ip)) return true;
  } while (Date.now() < end);
  return false;
}

function logTail(lines = 60): string {
  try {
    return fs.readFileSync(logFile, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no agent log)';
  }
}

describe('agents on three hosts joined by a VXLAN underlay (root)', { skip: isRoot ? false : 'needs root (network namespaces)' }, () => {
  let cloud: TestCloud;
  let admin: ApiClient;
  let alice: ApiClient;
  let gatewayIp: string;
  let vmCount = 0;
  const vms: Record<string, { name: string; port: Json; ip: string }> = {};

  /** A port, a sandbox VM on `host` (its tap in that host's namespace), a DHCP lease from the network node. */
  async function bootVm(key: string, host: Host, networkId: string): Promise<void> {
    const port = (await ok(alice.post('/v2.0/ports', { port: { network_id: networkId } }), 201)).port;
    const name = `${PREFIX}vm${vmCount++}`;
    await createSandboxVm({ port: { id: port.id, mac_address: port.mac_address, mtu: 1450 }, name, hostNamespace: host.ns });
    await until(`${key} ACTIVE on ${host.name}`, 15_000, async () => {
      const p = (await admin.get(`/v2.0/ports/${port.id}`)).body.port;
      return p.status === 'ACTIVE' && p['binding:host_id'] === host.name;
    });
    const address = await sandboxDhcp(name, 10);
    assert.equal(address?.split('/')[0], port.fixed_ips[0].ip_address, `${key} leased its address across the underlay`);
    vms[key] = { name, port, ip: port.fixed_ips[0].ip_address };
  }

  before(async () => {
    await buildMachine();
    cloud = await startTestCloud('sqlite');
    admin = cloud.api(cloud.adminToken);
    alice = cloud.api(await cloud.tokenFor('alice', 'member'));
    const logger = pino({ level: 'debug' }, pino.destination({ dest: logFile, append: true, sync: true }));
    for (const h of HOSTS) {
      h.agent = createAgent({
        store: cloud.nucleon.store, config: hostConfig(h), hostNamespace: h.ns, dataPlane: true,
        resyncIntervalMs: 1500, reportIntervalMs: 1000, logger: logger.child({ agent: h.name }),
      });
      await h.agent.start();
    }

    const pub = (await ok(admin.post('/v2.0/networks', { network: {
      name: 'public', 'router:external': true, 'provider:network_type': 'flat', 'provider:physical_network': 'public',
    } }), 201)).network;
    await ok(admin.post('/v2.0/subnets', { subnet: {
      network_id: pub.id, ip_version: 4, cidr: '203.0.113.0/24', gateway_ip: '203.0.113.1', enable_dhcp: false,
      allocation_pools: [{ start: '203.0.113.10', end: '203.0.113.200' }],
    } }), 201);
    const nets: Record<string, { id: string; subnet: string }> = {};
    for (const [key, cidr] of [['a', '10.31.0.0/24'], ['b', '10.32.0.0/24']]) {
      const n = (await ok(alice.post('/v2.0/networks', { network: { name: key } }), 201)).network;
      const s = (await ok(alice.post('/v2.0/subnets', { subnet: { network_id: n.id, ip_version: 4, cidr } }), 201)).subnet;
      nets[key] = { id: n.id, subnet: s.id };
    }
    const router = (await ok(alice.post('/v2.0/routers', { router: { external_gateway_info: { network_id: pub.id } } }), 201)).router;
    gatewayIp = router.external_gateway_info.external_fixed_ips[0].ip_address;
    for (const n of Object.values(nets)) await ok(alice.put(`/v2.0/routers/${router.id}/add_router_interface`, { subnet_id: n.subnet }));
    await bootVm('a1', COMPUTE1, nets.a.id);
    await bootVm('a2', COMPUTE2, nets.a.id);
    await bootVm('b1', COMPUTE2, nets.b.id);
  });

  after(async () => {
    for (const h of HOSTS) await h.agent?.stop();
    await cloud?.close();
    await cleanMachine();
  });

  it('registers three alive agents, the compute nodes without routers or DHCP', async () => {
    const agents = (await ok(admin.get('/v2.0/agents'))).agents;
    const byHost = new Map(agents.map((a: Json) => [a.host, a]));
    for (const h of HOSTS) {
      const a = byHost.get(h.name) as Json;
      assert.equal(a?.alive, true, h.name);
      assert.equal(a.configurations.underlay_ip, h.underlayIp);
      assert.equal(a.configurations.network_node, h.networkNode);
    }
    // Only this run's namespaces: other test files may be wiring routers at the same time.
    const routerNs = (await listNamespaces()).filter((n) => n.startsWith(PREFIX) && (n.includes('qrouter-') || n.includes('qdhcp-')));
    assert.ok(routerNs.length >= 3, routerNs.join(', '));
    assert.ok(routerNs.every((n) => n.startsWith(`${NETWORK_NODE.ns}-`)), 'routers and DHCP servers only on the network node');
  });

  it('VMs on two compute nodes ping each other across the VXLAN underlay', async () => {
    assert.ok(await pingsWithin(vms.a1.name, vms.a2.ip, 5000), logTail());
    assert.ok(await pingsWithin(vms.a2.name, vms.a1.ip, 5000));
  });

  it('a VM reaches another network through the network node\'s router, and the internet through its SNAT', async () => {
    assert.ok(await pingsWithin(vms.a1.name, vms.b1.ip, 5000), logTail());
    assert.ok(await pingsWithin(vms.b1.name, '198.51.100.10', 5000));
    // The far side sees the router's gateway address (SNAT on the network node).
    const code = 'import socket\ns=socket.socket()\ns.bind(("198.51.100.10", 8090))\ns.listen(1)\nprint("ready", flush=True)\nc,a=s.accept()\nprint(a[0], flush=True)';
    const { spawn } = await import('node:child_process');
    const server = spawn('ip', ['netns', 'exec', INET_NS, 'python3', '-c', code], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      let out = '';
      server.stdout!.on('data', (d) => { out += d; });
      await until('the server listening', 5000, async () => out.includes('ready'));
      await run(['ip', 'netns', 'exec', vms.a1.name, 'python3', '-c', 'import socket; socket.create_connection(("198.51.100.10", 8090), timeout=2).close()']);
      await until('the server saw a client', 5000, async () => out.trim().split('\n').length >= 2);
      assert.equal(out.trim().split('\n')[1], gatewayIp);
    } finally {
      server.kill('SIGKILL');
    }
  });

  it('each compute node floods its VXLAN networks to the other hosts, and only where it has ports', async () => {
    const fdb = async (ns: string) => (await sh(['bridge', '-n', ns, 'fdb', 'show'])).stdout;
    const c1 = await fdb(COMPUTE1.ns);
    assert.match(c1, /00:00:00:00:00:00 dev vxlan-\d+ dst 192\.168\.77\.1/);
    assert.match(c1, /00:00:00:00:00:00 dev vxlan-\d+ dst 192\.168\.77\.3/);
    const links = async (ns: string) => (await sh(['ip', '-n', ns, '-o', 'link', 'show', 'type', 'vxlan'])).stdout.trim().split('\n').filter(Boolean);
    assert.equal((await links(COMPUTE1.ns)).length, 1, 'compute 1 has ports on network a only');
    assert.equal((await links(COMPUTE2.ns)).length, 2, 'compute 2 on a and b');
  });
});
