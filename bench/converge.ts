// Convergence benchmark (root only): how long from an API call until the data
// plane does what it says, on a real kernel, with the agent as it runs in
// production (feed polled every 100 ms, taps every 500 ms). And how long one
// compile + apply takes for a 1,000-port host. See bench/README.md.
//
//   npm run bench:converge
//   npm run bench:converge -- --tries 5 --ports 200 --rules 10
//
// Everything it creates on the machine is a namespace named ncv-<rand>-…,
// removed at the end (also on failure or Ctrl-C). Traffic stays inside them.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { createAgent, type Agent } from '../src/agent/index.ts';
import type { HostConfig } from '../src/agent/model.ts';
import { tapName } from '../src/agent/plan.ts';
import { listNamespaces, namespacePids, run, runOk, terminate } from '../src/agent/apply/exec.ts';
import { createSandboxVm, deleteSandboxVm } from '../src/agent/sandbox.ts';
import { createServices } from '../src/services/index.ts';
import { systemContext } from '../src/identity/context.ts';
import { lpad, median, ms, pad, printMachine, printTargets, withBenchCloud, type BenchCloud, type Client } from './lib.ts';

const { values: args } = parseArgs({
  options: {
    tries: { type: 'string', default: '20' },
    ports: { type: 'string', default: '1000' },
    rules: { type: 'string', default: '20' },
  },
});
const TRIES = Number(args.tries);
const PORTS = Number(args.ports);
const RULES = Number(args.rules);
const TARGETS = { changeMs: 1000, fullApplyMs: 2000, changeApplyMs: 1000 };

const RAND = crypto.randomBytes(2).toString('hex');
const PREFIX = `ncv-${RAND}-`;
const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), `${PREFIX}state-`));
const silent = pino({ level: 'silent' });

// ------------------------------------------------------------------ machine

const nsExec = (ns: string, argv: string[]) => ['ip', 'netns', 'exec', ns, ...argv];

/** A namespace acting as a host with br-ex, and an "internet" namespace on br-ex. */
async function buildHost(name: string, withInternet: boolean): Promise<{ host: string; inet: string }> {
  const host = `${PREFIX}${name}`;
  const inet = `${PREFIX}${name}-inet`;
  await runOk(['ip', 'netns', 'add', host]);
  const lines = ['link set dev lo up', 'link add br-ex type bridge', 'link set dev br-ex up'];
  if (withInternet) {
    await runOk(['ip', 'netns', 'add', inet]);
    lines.push(`link add ${PREFIX}ex type veth peer name eth0 netns ${inet}`, `link set dev ${PREFIX}ex master br-ex`, `link set dev ${PREFIX}ex up`);
  }
  await runOk(['ip', '-n', host, '-batch', '-'], lines.join('\n') + '\n');
  if (withInternet) {
    await runOk(['ip', '-n', inet, '-batch', '-'], 'link set dev lo up\naddr add 198.51.100.10/32 dev lo\naddr add 203.0.113.1/24 dev eth0\nlink set dev eth0 up\n');
    await fastArp(inet, 'eth0');
  }
  return { host, inet };
}

async function cleanMachine(): Promise<void> {
  for (const ns of (await listNamespaces()).filter((n) => n.startsWith(PREFIX))) {
    await terminate(await namespacePids(ns)).catch(() => {});
    await run(['ip', 'netns', 'del', ns]);
    fs.rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  }
  fs.rmSync(stateDir, { recursive: true, force: true });
}

function hostConfig(name: string, networkNode: boolean): HostConfig {
  return {
    host: `${PREFIX}${name}`, bridgeMappings: { public: 'br-ex' }, vlanInterfaces: {}, underlayIp: null, underlayInterface: null,
    networkNode, namespacePrefix: PREFIX, stateDir: path.join(stateDir, name),
  };
}

// ------------------------------------------------------------------ probes

/** True at the first echo reply (one ping process sending every 10 ms), false after `deadlineS`. */
async function firstPing(ns: string, ip: string, deadlineS = 5): Promise<boolean> {
  return (await run(nsExec(ns, ['ping', '-n', '-q', '-c1', '-i0.01', `-w${deadlineS}`, ip]))).code === 0;
}

/** Connects again and again (50 ms timeouts) until a TCP connection is made, within deadlineS. */
async function firstConnect(ns: string, ip: string, port: number, deadlineS = 5): Promise<boolean> {
  const code = [
    'import socket, time, sys',
    `end = time.monotonic() + ${deadlineS}`,
    'while time.monotonic() < end:',
    '    s = socket.socket()',
    '    s.settimeout(0.05)',
    '    try:',
    `        s.connect((${JSON.stringify(ip)}, ${port}))`,
    '        sys.exit(0)',
    '    except OSError:',
    '        time.sleep(0.01)',
    '    finally:',
    '        s.close()',
    'sys.exit(1)',
  ].join('\n');
  return (await run(nsExec(ns, ['python3', '-c', code]))).code === 0;
}

/** A listener in ns on port that accepts and closes (the SG probe's far end). */
async function listener(ns: string, port: number): Promise<void> {
  const code = `import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',${port}))\ns.listen(64)\nwhile True:\n    c,_=s.accept(); c.close()`;
  const { spawn } = await import('node:child_process');
  spawn('ip', ['netns', 'exec', ns, 'python3', '-c', code], { stdio: 'ignore', detached: false }).unref();
  await new Promise((r) => setTimeout(r, 300));
}

/**
 * The probes start before the agent has wired anything, so their first ARP
 * request goes unanswered; the kernel then asks again only every second
 * (retrans_time), and that timer, not the agent, would be measured. The
 * probing namespaces ask every 10 ms instead, and never give up.
 */
async function fastArp(ns: string, dev: string): Promise<void> {
  await runOk(nsExec(ns, ['sysctl', '-q', '-w', `net.ipv4.neigh.${dev}.retrans_time_ms=10`, `net.ipv4.neigh.${dev}.mcast_solicit=250`, `net.ipv4.neigh.${dev}.ucast_solicit=250`]));
}

/** Waits until the agent has had a pass with nothing to do (settled), so tries do not overlap. */
async function settled(agent: Agent): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const r = await agent.runOnce('bench-settle');
    if (r.changes === 0 && r.reported.ports.length === 0 && r.reported.floatingips.length === 0 && r.dhcpPorts === 0) return;
  }
}

async function timed(fn: () => Promise<boolean>): Promise<number> {
  const t0 = performance.now();
  if (!(await fn())) throw new Error('no connectivity within the deadline');
  return performance.now() - t0;
}

// ------------------------------------------------------------------ part 1: API call → connectivity

interface Latencies { portToGateway: number[]; fipToOutside: number[]; ruleToConnection: number[] }

async function apiToConnectivity(cloud: BenchCloud): Promise<Latencies> {
  const { host, inet } = await buildHost('net', true);
  const agent = createAgent({ store: cloud.nucleon.store, config: hostConfig('net', true), hostNamespace: host, dataPlane: true, logger: silent });
  await agent.start();
  try {
    const api = cloud.api;
    const pub = (await api.expect(201, 'POST', '/v2.0/networks', { network: {
      name: 'public', 'router:external': true, 'provider:network_type': 'flat', 'provider:physical_network': 'public',
    } })).network;
    await api.expect(201, 'POST', '/v2.0/subnets', { subnet: {
      network_id: pub.id, ip_version: 4, cidr: '203.0.113.0/24', gateway_ip: '203.0.113.1', enable_dhcp: false,
      allocation_pools: [{ start: '203.0.113.10', end: '203.0.113.250' }],
    } });
    const net = (await api.expect(201, 'POST', '/v2.0/networks', { network: { name: 'bench' } })).network;
    const subnet = (await api.expect(201, 'POST', '/v2.0/subnets', { subnet: { network_id: net.id, ip_version: 4, cidr: '10.20.0.0/16' } })).subnet;
    const router = (await api.expect(201, 'POST', '/v2.0/routers', { router: { external_gateway_info: { network_id: pub.id } } })).router;
    await api.expect(200, 'PUT', `/v2.0/routers/${router.id}/add_router_interface`, { subnet_id: subnet.id });
    await settled(agent);

    const out: Latencies = { portToGateway: [], fipToOutside: [], ruleToConnection: [] };
    out.portToGateway = await portToGateway(api, agent, host, net.id);
    out.fipToOutside = await fipToOutside(api, agent, host, inet, net.id, pub.id);
    out.ruleToConnection = await ruleToConnection(api, agent, host, net.id);
    return out;
  } finally {
    await agent.stop();
  }
}

/** A VM with a static address from its port (DHCP's retry timer is not what is measured). */
async function vmOn(api: Client, host: string, networkId: string, name: string, extra: object = {}): Promise<{ ns: string; port: any }> {
  const port = (await api.expect(201, 'POST', '/v2.0/ports', { port: { network_id: networkId, ...extra } })).port;
  const ns = `${PREFIX}${name}`;
  await createSandboxVm({ port: { id: port.id, mac_address: port.mac_address, mtu: 1450 }, name: ns, hostNamespace: host });
  await runOk(['ip', '-n', ns, '-batch', '-'], `addr add ${port.fixed_ips[0].ip_address}/16 dev eth0\nroute add default via 10.20.0.1\n`);
  await fastArp(ns, 'eth0');
  return { ns, port };
}

async function portToGateway(api: Client, agent: Agent, host: string, networkId: string): Promise<number[]> {
  const times: number[] = [];
  let t0 = 0;
  if (process.env.NCV_DEBUG) agent.on('pass', (r) => console.log(`    pass ${r.reason} ended at ${(performance.now() - t0).toFixed(0)} ms: ${JSON.stringify(r.ms)} changes ${r.changes}`));
  for (let i = 0; i < TRIES; i++) {
    let vm: { ns: string; port: any } | undefined;
    t0 = performance.now();
    times.push(await timed(async () => {
      vm = await vmOn(api, host, networkId, `p${i}`);
      if (process.env.NCV_DEBUG) console.log(`    vm ready at ${(performance.now() - t0).toFixed(0)} ms`);
      return firstPing(vm.ns, '10.20.0.1');
    }));
    if (process.env.NCV_DEBUG) console.log(`    ping at ${(performance.now() - t0).toFixed(0)} ms`);
    if (!vm) throw new Error('no VM');
    await deleteSandboxVm(vm.ns);
    await api.expect(204, 'DELETE', `/v2.0/ports/${vm.port.id}`);
    await settled(agent);
  }
  return times;
}

async function securityGroup(api: Client, name: string, rules: object[]): Promise<string> {
  const g = (await api.expect(201, 'POST', '/v2.0/security-groups', { security_group: { name } })).security_group;
  for (const r of rules) {
    await api.expect(201, 'POST', '/v2.0/security-group-rules', { security_group_rule: { security_group_id: g.id, direction: 'ingress', ethertype: 'IPv4', ...r } });
  }
  return g.id;
}

async function fipToOutside(api: Client, agent: Agent, host: string, inet: string, networkId: string, publicId: string): Promise<number[]> {
  const icmp = await securityGroup(api, 'icmp-anywhere', [{ protocol: 'icmp', remote_ip_prefix: '0.0.0.0/0' }]);
  const vm = await vmOn(api, host, networkId, 'fip', { security_groups: [icmp] });
  if (!(await firstPing(vm.ns, '10.20.0.1'))) throw new Error('the FIP VM is not wired');
  const fip = (await api.expect(201, 'POST', '/v2.0/floatingips', { floatingip: { floating_network_id: publicId } })).floatingip;
  await settled(agent);
  const times: number[] = [];
  for (let i = 0; i < TRIES; i++) {
    times.push(await timed(async () => {
      await api.expect(200, 'PUT', `/v2.0/floatingips/${fip.id}`, { floatingip: { port_id: vm.port.id } });
      return firstPing(inet, fip.floating_ip_address);
    }));
    await api.expect(200, 'PUT', `/v2.0/floatingips/${fip.id}`, { floatingip: { port_id: null } });
    await settled(agent);
  }
  return times;
}

async function ruleToConnection(api: Client, agent: Agent, host: string, networkId: string): Promise<number[]> {
  const closed = await securityGroup(api, 'closed', []);
  const target = await vmOn(api, host, networkId, 'sgt', { security_groups: [closed] });
  const source = await vmOn(api, host, networkId, 'sgs', { security_groups: [closed] });
  await listener(target.ns, 2222);
  await settled(agent);
  const targetIp = target.port.fixed_ips[0].ip_address;
  const sourceIp = source.port.fixed_ips[0].ip_address;
  if (await firstConnect(source.ns, targetIp, 2222, 0.5)) throw new Error('the target is open before any rule');
  const times: number[] = [];
  for (let i = 0; i < TRIES; i++) {
    let ruleId = '';
    times.push(await timed(async () => {
      ruleId = (await api.expect(201, 'POST', '/v2.0/security-group-rules', { security_group_rule: {
        security_group_id: closed, direction: 'ingress', ethertype: 'IPv4', protocol: 'tcp',
        port_range_min: 2222, port_range_max: 2222, remote_ip_prefix: `${sourceIp}/32`,
      } })).security_group_rule.id;
      return firstConnect(source.ns, targetIp, 2222);
    }));
    await api.expect(204, 'DELETE', `/v2.0/security-group-rules/${ruleId}`);
    await settled(agent);
  }
  return times;
}

// ------------------------------------------------------------------ part 2: 1,000 ports × 20 rules

interface ScaleFigures { ports: number; rules: number; full: Record<string, number>; change: Record<string, number> }

async function scale(cloud: BenchCloud): Promise<ScaleFigures> {
  const { host } = await buildHost('big', false);
  const s = createServices(cloud.nucleon.store);
  const admin = systemContext();
  const project = crypto.randomUUID().replace(/-/g, '');
  const ctx = { ...admin, projectId: project };
  await cloud.nucleon.store.db.insertInto('quotas').values(['port', 'security_group', 'security_group_rule'].map((resource) => ({ project_id: project, resource, hard_limit: -1 }))).execute();

  // 50 groups of RULES ingress rules (one in five from a remote group), ports spread over them.
  const groupCount = 50;
  const groups: string[] = [];
  for (let g = 0; g < groupCount; g++) groups.push((await s.securityGroups.create(ctx, { name: `g${g}`, project_id: project })).id as string);
  for (let g = 0; g < groupCount; g++) {
    for (let r = 0; r < RULES; r++) {
      const rule = r % 5 === 0
        ? { remote_group_id: groups[(g + 1) % groupCount] }
        : { remote_ip_prefix: `10.${(r * 7) % 250}.0.0/16` };
      await s.securityGroupRules.create(ctx, {
        security_group_id: groups[g], direction: 'ingress', protocol: 'tcp', port_range_min: 1000 + r, port_range_max: 1000 + r, ...rule,
      });
    }
  }
  const net = await s.networks.create(ctx, { name: 'big', project_id: project });
  await s.subnets.create(ctx, { network_id: net.id, ip_version: 4, cidr: '10.100.0.0/16', project_id: project });
  const ports: string[] = [];
  for (let i = 0; i < PORTS; i += 100) {
    const chunk = Array.from({ length: Math.min(100, PORTS - i) }, (_, k) => ({
      network_id: net.id, project_id: project, security_groups: [groups[(i + k) % groupCount]],
    }));
    for (const p of await s.ports.createBulk(ctx, chunk)) ports.push(p.id as string);
  }
  // What a hypervisor would do: one tap per port on the host.
  const taps = ports.map((id) => `tuntap add dev ${tapName(id)} mode tap\nlink set dev ${tapName(id)} up`).join('\n');
  await runOk(['ip', '-n', host, '-batch', '-'], taps + '\n');

  const agent = createAgent({ store: cloud.nucleon.store, config: hostConfig('big', false), hostNamespace: host, dataPlane: true, logger: silent });
  try {
    // No timers: exactly the passes we ask for.
    await agent.register();
    const full = await agent.runOnce('full');
    if (full.error) throw full.error;
    const check = await agent.runOnce('check');
    if (check.changes !== 0) console.log(`  note: the pass after the full apply still made ${check.changes} changes`);
    await s.securityGroupRules.create(ctx, {
      security_group_id: groups[0], direction: 'ingress', protocol: 'udp', port_range_min: 53, port_range_max: 53,
      remote_ip_prefix: '192.0.2.0/24',
    });
    const change = await agent.runOnce('one rule');
    if (change.error) throw change.error;
    return { ports: PORTS, rules: RULES, full: { ...full.ms, changes: full.changes }, change: { ...change.ms, changes: change.changes } };
  } finally {
    await agent.stop();
  }
}

// ------------------------------------------------------------------ report

function printLatencies(l: Latencies): Array<[string, string, boolean]> {
  const rows: Array<[string, number[]]> = [
    ['port create → VM pings its gateway', l.portToGateway],
    ['FIP associate → reachable from outside', l.fipToOutside],
    ['SG rule add → connection admitted', l.ruleToConnection],
  ];
  console.log(`\nAPI call → working connectivity (${TRIES} tries each; ms)`);
  console.log(`  ${pad('', 42)}${lpad('p50', 10)}${lpad('min', 10)}${lpad('max', 10)}`);
  for (const [label, xs] of rows) {
    console.log(`  ${pad(label, 42)}${lpad(median(xs).toFixed(0), 10)}${lpad(Math.min(...xs).toFixed(0), 10)}${lpad(Math.max(...xs).toFixed(0), 10)}`);
  }
  return rows.map(([label, xs]) => [`${label} p50 < ${TARGETS.changeMs} ms`, ms(median(xs)), median(xs) < TARGETS.changeMs]);
}

function printScale(f: ScaleFigures): Array<[string, string, boolean]> {
  console.log(`\n${f.ports} ports × ${f.rules} rules on one host (compute node; 50 groups, 1 rule in 5 from a remote group)`);
  const line = (label: string, m: Record<string, number>) => console.log(
    `  ${pad(label, 16)} load ${ms(m.load)}, compile ${ms(m.compile)}, apply ${ms(m.apply)} (${m.changes} changes), report ${ms(m.report)}; total ${ms(m.total)}`);
  line('full', f.full);
  line('one rule added', f.change);
  const full = f.full.compile + f.full.apply;
  const change = f.change.compile + f.change.apply;
  return [
    [`full compile+apply < ${TARGETS.fullApplyMs} ms`, ms(full), full < TARGETS.fullApplyMs],
    [`one-rule compile+apply < ${TARGETS.changeApplyMs} ms`, ms(change), change < TARGETS.changeApplyMs],
  ];
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error('bench:converge needs root (it builds network namespaces)');
    process.exit(1);
  }
  const stop = async () => {
    await cleanMachine();
    process.exit(130);
  };
  // Not SIGPIPE: node ignores it, and a child closing its stdin early must not end the run.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, () => void stop());
  printMachine('bench:converge — API call to data plane, and compile+apply at scale (SQLite, agent in-process)');
  const targets: Array<[string, string, boolean]> = [];
  try {
    await withBenchCloud(undefined, 1, async (cloud) => {
      targets.push(...printLatencies(await apiToConnectivity(cloud)));
    });
    await withBenchCloud(undefined, 1, async (cloud) => {
      targets.push(...printScale(await scale(cloud)));
    });
  } finally {
    await cleanMachine();
  }
  console.log('');
  printTargets('targets', targets);
}

await main();
