// End to end on a real kernel (root only): Nucleon in this process, an agent
// in this process whose "host" is a network namespace made for the test
// (nag-<rand>-host, bridge mapping public:br-ex inside it), an "internet"
// namespace plugged into br-ex (203.0.113.1/24, 198.51.100.10/32 on lo), and
// sandbox VMs (namespaces) on ports made through the API. Everything is driven
// through the Networking API and checked with real traffic: ping -c1 -W1 and
// small TCP servers that answer with the address they see the client from.
//
// Everything this file creates on the machine is named nag-<rand>-…; after()
// removes it (namespaces, the processes in them, /etc/netns entries, state
// directories, child agents), also when a test fails. Traffic stays inside
// these namespaces.
import { until } from '../src/util/until.ts';
import { expectStatus as ok } from './support/server.ts';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { sql } from 'kysely';
import { startTestCloud, type ApiClient, type Json, type TestCloud } from './support/server.ts';
import { createAgent, listTaps, type Agent } from '../src/agent/index.ts';
import type { HostConfig } from '../src/agent/model.ts';
import { routerNamespace, tapName } from '../src/agent/plan.ts';
import { listNamespaces, namespacePids, run, runOk, terminate } from '../src/agent/apply/exec.ts';
import { createSandboxVm, deleteSandboxVm, sandboxDhcp } from '../src/agent/sandbox.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const isRoot = process.getuid?.() === 0;
const RAND = crypto.randomBytes(2).toString('hex');
const PREFIX = `nag-${RAND}-`;
const HOST_NS = `${PREFIX}host`;
const INET_NS = `${PREFIX}inet`;
const HOST_NAME = `${PREFIX}node`;
const RESYNC_MS = 1500;
const INTERNET_IP = '203.0.113.1';
const INTERNET_FAR = '198.51.100.10';

const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), `${PREFIX}state-`));
const logFile = path.join(stateDir, 'agent.log');
const children = new Set<ChildProcess>();
const servers: ChildProcess[] = [];

// ---------------------------------------------------------------- the machine

const sh = (argv: string[], input?: string) => runOk(argv, input);
const inNs = (ns: string, argv: string[]) => ['ip', 'netns', 'exec', ns, ...argv];

/** The host namespace with br-ex, and the internet namespace plugged into it. */
async function buildMachine(): Promise<void> {
  await sh(['ip', 'netns', 'add', HOST_NS]);
  await sh(['ip', 'netns', 'add', INET_NS]);
  await sh(['ip', '-n', HOST_NS, '-batch', '-'], [
    'link set dev lo up',
    'link add br-ex type bridge',
    'link set dev br-ex up',
    `link add ${PREFIX}ex type veth peer name eth0 netns ${INET_NS}`,
    `link set dev ${PREFIX}ex master br-ex`,
    `link set dev ${PREFIX}ex up`,
  ].join('\n') + '\n');
  await sh(['ip', '-n', INET_NS, '-batch', '-'], [
    'link set dev lo up',
    `addr add ${INTERNET_FAR}/32 dev lo`,
    `addr add ${INTERNET_IP}/24 dev eth0`,
    'link set dev eth0 up',
  ].join('\n') + '\n');
}

/** Removes every namespace of this run and what runs in it. */
async function cleanMachine(): Promise<void> {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const s of servers) if (s.exitCode === null && s.signalCode === null) s.kill('SIGKILL');
  const mine = (await listNamespaces()).filter((n) => n.startsWith(PREFIX));
  for (const ns of mine) {
    if (ns.includes('-vm')) { await deleteSandboxVm(ns).catch(() => {}); continue; }
    await terminate(await namespacePids(ns)).catch(() => {});
    await run(['ip', 'netns', 'del', ns]);
    fs.rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  }
  fs.rmSync(stateDir, { recursive: true, force: true });
}

// ---------------------------------------------------------------- traffic

async function ping(ns: string, ip: string, opts: { source?: string } = {}): Promise<boolean> {
  const argv = inNs(ns, ['ping', '-n', '-c1', '-W1', ...(opts.source ? ['-I', opts.source] : []), ip]);
  return (await run(argv)).code === 0;
}

/** Pings until it works (or gives up): the first packet may wait for ARP and a plug. */
async function pingsWithin(ns: string, ip: string, ms: number, opts: { source?: string } = {}): Promise<boolean> {
  const end = Date.now() + ms;
  do {
    if (await ping(ns, ip, opts)) return true;
  } while (Date.now() < end);
  return false;
}

/**
 * A TCP server in ns on ip:port that writes the client's address and closes:
 * the far side's view of who connected (SNAT, floating IPs, security groups).
 */
async function whoamiServer(ns: string, ip: string, port: number): Promise<void> {
  const code = [
    'import socket',
    `s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)`,
    's.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
    `s.bind((${JSON.stringify(ip)}, ${port}))`,
    's.listen(64)',
    'print("ready", flush=True)',
    'while True:',
    '    c, a = s.accept()',
    '    c.sendall((a[0] + "\\n").encode())',
    '    c.close()',
  ].join('\n');
  const proc = spawn('ip', ['netns', 'exec', ns, 'python3', '-c', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  servers.push(proc);
  await new Promise<void>((resolve, reject) => {
    let err = '';
    proc.stderr!.on('data', (d) => { err += d; });
    proc.stdout!.once('data', () => resolve());
    proc.once('exit', (c) => reject(new Error(`whoami server in ${ns} exited ${c}: ${err}`)));
  });
}

/** Connects from ns to ip:port; the address the server saw, or null when no connection was made within 1 s. */
async function whoami(ns: string, ip: string, port: number, source?: string): Promise<string | null> {
  const code = [
    'import socket, sys',
    's = socket.socket(socket.AF_INET, socket.SOCK_STREAM)',
    's.settimeout(1)',
    ...(source ? [`s.bind((${JSON.stringify(source)}, 0))`] : []),
    `s.connect((${JSON.stringify(ip)}, ${port}))`,
    'print(s.recv(100).decode().strip())',
  ].join('\n');
  const r = await run(inNs(ns, ['python3', '-c', code]));
  return r.code === 0 ? r.stdout.trim() : null;
}

/** Retries whoami until it answers (or gives up). */
async function whoamiWithin(ns: string, ip: string, port: number, ms: number): Promise<string | null> {
  const end = Date.now() + ms;
  do {
    const seen = await whoami(ns, ip, port);
    if (seen) return seen;
  } while (Date.now() < end);
  return null;
}

// ---------------------------------------------------------------- the cloud

let cloud: TestCloud;
let adminApi: ApiClient;
let agent: Agent | null = null;

function hostConfig(): HostConfig {
  return {
    host: HOST_NAME, bridgeMappings: { public: 'br-ex' }, vlanInterfaces: {}, underlayIp: null, underlayInterface: null,
    networkNode: true, namespacePrefix: PREFIX, stateDir: path.join(stateDir, 'agent'),
  };
}

async function startAgent(): Promise<Agent> {
  const logger = pino({ level: 'debug' }, pino.destination({ dest: logFile, append: true, sync: true }));
  const a = createAgent({
    store: cloud.nucleon.store, config: hostConfig(), hostNamespace: HOST_NS, dataPlane: true,
    resyncIntervalMs: RESYNC_MS, reportIntervalMs: 1000, logger,
  });
  await a.start();
  return a;
}



interface Vm { name: string; port: Json; ip: string }
let vmCounter = 0;

/** A port through the API, then a sandbox VM on it that gets its address by DHCP. */
async function bootVm(api: ApiClient, networkId: string, extra: Json = {}): Promise<Vm> {
  const port = (await ok(api.post('/v2.0/ports', { port: { network_id: networkId, ...extra } }), 201)).port;
  const name = `${PREFIX}vm${vmCounter++}`;
  await createSandboxVm({ port: { id: port.id, mac_address: port.mac_address, mtu: 1450 }, name, hostNamespace: HOST_NS });
  // The agent plugs the tap on its next pass (tap poll): lease once that is done.
  await until(`port ${port.id} ACTIVE`, 15_000, async () => (await adminApi.get(`/v2.0/ports/${port.id}`)).body.port.status === 'ACTIVE');
  const address = await sandboxDhcp(name, 10);
  const ip = port.fixed_ips[0].ip_address as string;
  assert.equal(address?.split('/')[0], ip, `${name} leased its port's address`);
  return { name, port, ip };
}

/** Removes a VM: its sandbox namespace (and so its tap) and its port. */
async function destroyVm(api: ApiClient, vm: Vm): Promise<void> {
  await deleteSandboxVm(vm.name);
  await ok(api.del(`/v2.0/ports/${vm.port.id}`), 204);
}

async function network(api: ApiClient, name: string, cidr: string, extra: Json = {}): Promise<{ id: string; subnetId: string }> {
  const net = (await ok(api.post('/v2.0/networks', { network: { name } }), 201)).network;
  const subnet = (await ok(api.post('/v2.0/subnets', { subnet: { network_id: net.id, ip_version: 4, cidr, ...extra } }), 201)).subnet;
  return { id: net.id, subnetId: subnet.id };
}

/** A security group with ingress rules (IPv4; protocol, ports, remote prefix or group as given). */
async function securityGroup(api: ApiClient, name: string, rules: Json[]): Promise<string> {
  const group = (await ok(api.post('/v2.0/security-groups', { security_group: { name } }), 201)).security_group;
  for (const rule of rules) {
    await ok(api.post('/v2.0/security-group-rules', { security_group_rule: {
      security_group_id: group.id, direction: 'ingress', ethertype: 'IPv4', ...rule,
    } }), 201);
  }
  return group.id;
}

/** The SQLite file behind the test cloud, for an agent in another process. */
async function databaseFile(): Promise<string> {
  const rows = await sql<{ name: string; file: string }>`PRAGMA database_list`.execute(cloud.nucleon.store.db);
  return rows.rows.find((r) => r.name === 'main')!.file;
}

/** `nucleon agent` as a child process on the test's host namespace; its stdout lines go to onLine. */
function childAgent(db: string, onLine: (line: string) => void): ChildProcess {
  const proc = spawn(process.execPath, [path.join(ROOT, 'bin/nucleon.js'), 'agent',
    '--database', `sqlite:${db}`, '--host', HOST_NAME, '--host-namespace', HOST_NS, '--namespace-prefix', PREFIX,
    '--bridge-mapping', 'public:br-ex', '--state-dir', hostConfig().stateDir,
    '--resync-interval', String(RESYNC_MS / 1000), '--report-interval', '1', '--log-level', 'info',
  ], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  let buffer = '';
  proc.stdout!.on('data', (d) => {
    buffer += d;
    const lines = buffer.split('\n');
    buffer = lines.pop()!;
    for (const line of lines) onLine(line);
  });
  return proc;
}

function agentLogTail(lines = 60): string {
  try {
    return fs.readFileSync(logFile, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no agent log)';
  }
}

// ---------------------------------------------------------------- scenarios

describe('agent end to end in namespaces (root)', { skip: isRoot ? false : 'needs root (network namespaces)' }, () => {
  let alice: ApiClient;
  let publicNet: string;
  let net1: { id: string; subnetId: string };
  let net2: { id: string; subnetId: string };
  let routerId: string;
  let gatewayIp: string;
  let vm1: Vm;
  let vm2: Vm;
  let vm3: Vm;

  before(async () => {
    await buildMachine();
    cloud = await startTestCloud('sqlite');
    adminApi = cloud.api(cloud.adminToken);
    alice = cloud.api(await cloud.tokenFor('alice', 'member'));
    agent = await startAgent();

    // Admin: the external flat network on physnet public (br-ex), no DHCP.
    const pub = (await ok(adminApi.post('/v2.0/networks', { network: {
      name: 'public', 'router:external': true, 'provider:network_type': 'flat', 'provider:physical_network': 'public',
    } }), 201)).network;
    publicNet = pub.id;
    await ok(adminApi.post('/v2.0/subnets', { subnet: {
      network_id: publicNet, ip_version: 4, cidr: '203.0.113.0/24', gateway_ip: INTERNET_IP, enable_dhcp: false,
      allocation_pools: [{ start: '203.0.113.10', end: '203.0.113.200' }],
    } }), 201);

    // Alice: two networks, a router with a gateway and both interfaces, three VMs.
    net1 = await network(alice, 'net1', '10.1.0.0/24');
    net2 = await network(alice, 'net2', '10.2.0.0/24');
    const router = (await ok(alice.post('/v2.0/routers', { router: { name: 'r1', external_gateway_info: { network_id: publicNet } } }), 201)).router;
    routerId = router.id;
    gatewayIp = router.external_gateway_info.external_fixed_ips[0].ip_address;
    await ok(alice.put(`/v2.0/routers/${routerId}/add_router_interface`, { subnet_id: net1.subnetId }));
    await ok(alice.put(`/v2.0/routers/${routerId}/add_router_interface`, { subnet_id: net2.subnetId }));
    vm1 = await bootVm(alice, net1.id);
    vm2 = await bootVm(alice, net1.id);
    vm3 = await bootVm(alice, net2.id);
    await whoamiServer(INET_NS, INTERNET_FAR, 8080);
  });

  after(async () => {
    await agent?.stop();
    await cloud?.close();
    await cleanMachine();
  });

  it('reports the agent alive and the VM ports bound and ACTIVE through the API', async () => {
    const agents = (await ok(adminApi.get(`/v2.0/agents?host=${HOST_NAME}`))).agents;
    assert.equal(agents.length, 1);
    assert.equal(agents[0].alive, true);
    assert.equal(agents[0].configurations.network_node, true);
    for (const vm of [vm1, vm2, vm3]) {
      const p = (await ok(adminApi.get(`/v2.0/ports/${vm.port.id}`))).port;
      assert.deepEqual([p.status, p['binding:host_id'], p['binding:vif_type']], ['ACTIVE', HOST_NAME, 'bridge']);
    }
    const routerPorts = (await ok(adminApi.get(`/v2.0/ports?device_id=${routerId}`))).ports;
    assert.ok(routerPorts.length >= 3);
    for (const p of routerPorts) assert.equal(p.status, 'ACTIVE', `${p.device_owner} ${p.id}`);
  });

  it('two VMs on one network ping each other', async () => {
    assert.ok(await pingsWithin(vm1.name, vm2.ip, 5000), agentLogTail());
    assert.ok(await pingsWithin(vm2.name, vm1.ip, 5000));
  });

  it('VMs on two networks ping each other through the router', async () => {
    assert.ok(await pingsWithin(vm1.name, '10.1.0.1', 5000), 'vm1 reaches its gateway');
    assert.ok(await pingsWithin(vm1.name, vm3.ip, 5000), agentLogTail());
    assert.ok(await pingsWithin(vm3.name, vm2.ip, 5000));
  });

  it('a VM reaches the internet through SNAT: the far side sees the router\'s gateway address', async () => {
    assert.ok(await pingsWithin(vm1.name, INTERNET_FAR, 5000), agentLogTail());
    assert.equal(await whoamiWithin(vm1.name, INTERNET_FAR, 8080, 5000), gatewayIp);
    assert.equal(await whoamiWithin(vm3.name, INTERNET_FAR, 8080, 5000), gatewayIp);
  });

  it('the internet reaches a VM through its floating IP, and stops after disassociation', async () => {
    await whoamiServer(vm2.name, vm2.ip, 8081);
    // The default group admits only its own members: open ICMP and TCP 8081 to the world on vm2.
    const open = await securityGroup(alice, 'from-anywhere', [
      { protocol: 'icmp', remote_ip_prefix: '0.0.0.0/0' },
      { protocol: 'tcp', port_range_min: 8081, port_range_max: 8081, remote_ip_prefix: '0.0.0.0/0' },
    ]);
    const groups = [...vm2.port.security_groups, open];
    await ok(alice.put(`/v2.0/ports/${vm2.port.id}`, { port: { security_groups: groups } }));
    const fip = (await ok(alice.post('/v2.0/floatingips', { floatingip: { floating_network_id: publicNet, port_id: vm2.port.id } }), 201)).floatingip;
    const address = fip.floating_ip_address as string;
    await until('floating IP ACTIVE', 10_000, async () => (await alice.get(`/v2.0/floatingips/${fip.id}`)).body.floatingip.status === 'ACTIVE');
    assert.ok(await pingsWithin(INET_NS, address, 5000), agentLogTail());
    assert.equal(await whoamiWithin(INET_NS, address, 8081, 5000), INTERNET_IP, 'the VM sees the real client address');
    assert.equal(await whoamiWithin(vm2.name, INTERNET_FAR, 8080, 5000), address, 'its own traffic leaves from the floating IP');

    await ok(alice.put(`/v2.0/floatingips/${fip.id}`, { floatingip: { port_id: null } }));
    await until('floating IP DOWN', 10_000, async () => (await alice.get(`/v2.0/floatingips/${fip.id}`)).body.floatingip.status === 'DOWN');
    await until('the floating IP unreachable', 5000, async () => !(await ping(INET_NS, address)));
    assert.equal(await whoami(INET_NS, address, 8081), null);
    assert.equal(await whoamiWithin(vm2.name, INTERNET_FAR, 8080, 5000), gatewayIp, 'back to the router\'s SNAT');
  });

  it('security groups: the default group admits only its members; a CIDR rule admits another group\'s VM; deleting it closes again', async () => {
    await whoamiServer(vm1.name, vm1.ip, 22);
    const other = await securityGroup(alice, 'other', []);
    const outsider = await bootVm(alice, net1.id, { security_groups: [other] });
    try {
      assert.equal(await whoamiWithin(vm2.name, vm1.ip, 22, 5000), vm2.ip, 'a member of the default group gets in');
      assert.equal(await whoami(outsider.name, vm1.ip, 22), null, 'a VM of another group does not');
      const defaultGroup = vm1.port.security_groups[0];
      const rule = (await ok(alice.post('/v2.0/security-group-rules', { security_group_rule: {
        security_group_id: defaultGroup, direction: 'ingress', ethertype: 'IPv4', protocol: 'tcp',
        port_range_min: 22, port_range_max: 22, remote_ip_prefix: '10.1.0.0/24',
      } }), 201)).security_group_rule;
      assert.equal(await whoamiWithin(outsider.name, vm1.ip, 22, 3000), outsider.ip, 'tcp/22 from its CIDR admits it');
      await ok(alice.del(`/v2.0/security-group-rules/${rule.id}`), 204);
      await until('tcp/22 closed again', 3000, async () => (await whoami(outsider.name, vm1.ip, 22)) === null);
    } finally {
      await destroyVm(alice, outsider);
    }
  });

  it('security groups: a remote-group rule follows membership', async () => {
    const trusted = await securityGroup(alice, 'trusted', []);
    const defaultGroup = vm1.port.security_groups[0];
    await ok(alice.post('/v2.0/security-group-rules', { security_group_rule: {
      security_group_id: defaultGroup, direction: 'ingress', ethertype: 'IPv4', protocol: 'tcp',
      port_range_min: 22, port_range_max: 22, remote_group_id: trusted,
    } }), 201);
    const stranger = await securityGroup(alice, 'stranger', []);
    const vm = await bootVm(alice, net1.id, { security_groups: [stranger] });
    try {
      assert.equal(await whoami(vm.name, vm1.ip, 22), null, 'not a member of trusted: refused');
      await ok(alice.put(`/v2.0/ports/${vm.port.id}`, { port: { security_groups: [trusted] } }));
      assert.equal(await whoamiWithin(vm.name, vm1.ip, 22, 3000), vm.ip, 'joined trusted: admitted');
      await ok(alice.put(`/v2.0/ports/${vm.port.id}`, { port: { security_groups: [stranger] } }));
      await until('refused again after leaving trusted', 3000, async () => (await whoami(vm.name, vm1.ip, 22)) === null);
    } finally {
      await destroyVm(alice, vm);
    }
  });

  it('security groups: a spoofed source is dropped (unless it is an allowed address pair); outward connections get replies', async () => {
    const closed = await securityGroup(alice, 'no-ingress', []);
    const vm = await bootVm(alice, net1.id, { security_groups: [closed] });
    try {
      // vm2 admits ICMP from anywhere (the floating IP test gave it that group).
      assert.ok(await pingsWithin(vm.name, vm2.ip, 3000), 'its own address works');
      await sh(['ip', '-n', vm.name, 'addr', 'add', '10.1.0.250/32', 'dev', 'eth0']);
      assert.equal(await ping(vm.name, vm2.ip, { source: '10.1.0.250' }), false, 'a spoofed source is dropped');
      await ok(alice.put(`/v2.0/ports/${vm.port.id}`, { port: { allowed_address_pairs: [{ ip_address: '10.1.0.250' }] } }));
      assert.ok(await pingsWithin(vm.name, vm2.ip, 3000, { source: '10.1.0.250' }), 'an allowed address pair may be used');
      // No ingress rule at all, yet replies to its own connections come back (stateful).
      assert.equal(await whoamiWithin(vm.name, INTERNET_FAR, 8080, 3000), gatewayIp);
      assert.equal(await whoamiWithin(vm.name, vm2.ip, 8081, 3000), vm.ip);
      assert.equal(await ping(vm1.name, vm.ip), false, 'while nothing gets in unasked');
    } finally {
      await destroyVm(alice, vm);
    }
  });

  it('two projects with the same 10.0.0.0/24 on different networks never see each other', async () => {
    const bob = cloud.api(await cloud.tokenFor('bob', 'member'));
    const carol = cloud.api(await cloud.tokenFor('carol', 'member'));
    const bnet = await network(bob, 'same', '10.0.0.0/24');
    const cnet = await network(carol, 'same', '10.0.0.0/24');
    const at = (net: { subnetId: string }, ip: string) => ({ fixed_ips: [{ subnet_id: net.subnetId, ip_address: ip }] });
    const b10 = await bootVm(bob, bnet.id, at(bnet, '10.0.0.10'));
    const c10 = await bootVm(carol, cnet.id, at(cnet, '10.0.0.10'));
    const c20 = await bootVm(carol, cnet.id, at(cnet, '10.0.0.20'));
    try {
      assert.ok(await pingsWithin(c20.name, '10.0.0.10', 5000), 'carol\'s VMs see each other');
      const neigh = (await sh(['ip', '-n', c20.name, 'neigh', 'show', '10.0.0.10'])).stdout;
      assert.match(neigh, new RegExp(c10.port.mac_address), 'and 10.0.0.10 is carol\'s VM, not bob\'s');
      assert.equal(await pingsWithin(b10.name, '10.0.0.20', 2000), false, 'bob never reaches carol\'s 10.0.0.20');
      const bobNeigh = (await sh(['ip', '-n', b10.name, 'neigh', 'show', '10.0.0.20'])).stdout;
      assert.doesNotMatch(bobNeigh, /lladdr/, 'nor learns its MAC');
    } finally {
      for (const [api, vm] of [[bob, b10], [carol, c10], [carol, c20]] as const) await destroyVm(api, vm);
    }
  });

  it('nucleon sandbox vm create|delete: a VM made from the CLI gets its lease, talks, and goes away with its tap', async () => {
    const port = (await ok(alice.post('/v2.0/ports', { port: { network_id: net1.id } }), 201)).port;
    const name = `${PREFIX}vmcli`;
    const cli = (args: string[]) => run([process.execPath, path.join(ROOT, 'bin/nucleon.js'), 'sandbox', 'vm', ...args]);
    const created = await cli(['create', '--port', port.id, '--name', name, '--host-namespace', HOST_NS, '--database', `sqlite:${await databaseFile()}`]);
    assert.equal(created.code, 0, created.stdout + created.stderr);
    assert.match(created.stdout, new RegExp(`sandbox VM ${name}: tap ${tapName(port.id)} in ${HOST_NS}`));
    assert.match(created.stdout, new RegExp(`address: ${port.fixed_ips[0].ip_address.replace(/\./g, '\\.')}/24`));
    assert.ok(await pingsWithin(name, vm1.ip, 5000));
    const deleted = await cli(['delete', name]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.ok(!(await listNamespaces()).includes(name));
    await until('the port DOWN once its tap is gone', 10_000, async () => (await adminApi.get(`/v2.0/ports/${port.id}`)).body.port.status === 'DOWN');
    await ok(alice.del(`/v2.0/ports/${port.id}`), 204);
  });

  it('self-healing: a router namespace deleted by hand is back within one resync interval', async () => {
    assert.ok(await pingsWithin(vm1.name, vm3.ip, 3000));
    const legs = (await ok(adminApi.get(`/v2.0/ports?device_id=${routerId}`))).ports.map((p: Json) => tapName(p.id));
    await sh(['ip', 'netns', 'del', routerNamespace(PREFIX, routerId)]);
    const t0 = Date.now();
    // The kernel tears a namespace down asynchronously: the damage is real once the router's veths are gone.
    const present = async () => (await listTaps(HOST_NS)).filter((t) => legs.includes(t)).length;
    const before = legs.length;
    let gone = false;
    for (let i = 0; i < 200 && !gone; i++) {
      gone = (await present()) < before;
      if (!gone) await new Promise((r) => setTimeout(r, 5));
    }
    assert.ok(gone, 'the router\'s legs went with its namespace');
    const healed = await pingsWithin(vm1.name, vm3.ip, RESYNC_MS + 3000);
    const ms = Date.now() - t0;
    assert.ok(healed, agentLogTail());
    assert.ok(ms < RESYNC_MS + 3000, `healed in ${ms} ms`);
    assert.equal(await whoamiWithin(vm1.name, INTERNET_FAR, 8080, 3000), gatewayIp, 'SNAT too');
  });

  it('self-healing: an agent killed in the middle of an apply is replaced by one that converges', async () => {
    await agent!.stop();
    agent = null;
    // Work for the next agent: a new network behind the router, with a VM port, while no agent runs.
    const net3 = await network(alice, 'net3', '10.3.0.0/24');
    await ok(alice.put(`/v2.0/routers/${routerId}/add_router_interface`, { subnet_id: net3.subnetId }));
    const port = (await ok(alice.post('/v2.0/ports', { port: { network_id: net3.id } }), 201)).port;
    const name = `${PREFIX}vm${vmCounter++}`;
    await createSandboxVm({ port: { id: port.id, mac_address: port.mac_address, mtu: 1450 }, name, hostNamespace: HOST_NS });

    const lines: string[] = [];
    const proc = childAgent(await databaseFile(), (line) => {
      lines.push(line);
      // The first change it makes: kill it there, in the middle of its first apply.
      if (line.includes(`"msg":"${PREFIX}`) && proc.exitCode === null) proc.kill('SIGKILL');
    });
    const exit = await new Promise<NodeJS.Signals | null>((resolve) => proc.once('exit', (_c, sig) => resolve(sig)));
    assert.equal(exit, 'SIGKILL', lines.join('\n'));
    assert.ok(!lines.some((l) => l.includes('agent pass converged the host')), 'killed before its pass finished');
    assert.notEqual((await ok(adminApi.get(`/v2.0/ports/${port.id}`))).port.status, 'ACTIVE', 'nothing reported yet');

    agent = await startAgent();
    await until('the VM port ACTIVE', 15_000, async () => (await adminApi.get(`/v2.0/ports/${port.id}`)).body.port.status === 'ACTIVE');
    const address = await sandboxDhcp(name, 10);
    assert.equal(address?.split('/')[0], port.fixed_ips[0].ip_address);
    assert.ok(await pingsWithin(name, vm1.ip, 5000), agentLogTail());
    assert.ok(await pingsWithin(vm1.name, '10.3.0.1', 3000));
  });
});
