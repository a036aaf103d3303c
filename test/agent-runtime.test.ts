// The agent runtime without a data plane: when passes run (start, feed
// advance, taps, resync), that they never overlap, that a failed pass is
// retried, what plan-only mode leaves alone, and what a pass writes back
// (port binding and status, floating IP status, DHCP ports). The host is
// simulated: taps come from a list the test controls, apply only counts.
import { until as untilEvery } from '../src/util/until.ts';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStore } from '../src/store/database.ts';
import { forEachBackend } from './support/backends.ts';
import { caller } from './support/callers.ts';
import { createServices, type Services } from '../src/services/index.ts';
import { readChanges, latestSeq } from '../src/services/change-feed.ts';
import { emptyQuery } from '../src/services/resource-store.ts';
import { Agent, hostUuid, type AgentDeps, type PassResult } from '../src/agent/agent.ts';
import { loadModel } from '../src/agent/load-model.ts';
import { compileHost } from '../src/agent/compile/index.ts';
import { reportStatus } from '../src/agent/report.ts';
import { tapName, type HostPlan } from '../src/agent/plan.ts';
import type { HostConfig, HostFacts, LogicalModel } from '../src/agent/model.ts';
import type { Store } from '../src/store/database.ts';

/** Polls every 20 ms: these tests time the agent's reactions in the 100 ms range. */
const until = <T>(what: string, ms: number, fn: () => Promise<T | undefined | null | false>) => untilEvery(what, ms, fn, 20);

const alice = caller('aaaa1111aaaa1111aaaa1111aaaa1111');
const admin = caller('adad0000adad0000adad0000adad0000', 'admin');
const silent = pino({ level: process.env.NAG_LOG ?? 'silent' });

const hostConfig = (host: string, networkNode = true): HostConfig => ({
  host, bridgeMappings: { public: 'br-ex' }, vlanInterfaces: {}, underlayIp: null, underlayInterface: null,
  networkNode, namespacePrefix: `${host}-`, stateDir: `/tmp/${host}`,
});

/** Compile reduced to what the runtime relies on: a port whose tap is present is bound here. */
function miniCompile(model: LogicalModel, config: HostConfig, facts: HostFacts): HostPlan {
  const taps = new Set(facts.taps);
  return {
    host: config.host, namespaces: [], firewall: [], dhcp: [],
    bindings: model.ports.filter((p) => taps.has(tapName(p.id))).map((p) => ({ port_id: p.id, vif_type: 'bridge', active: p.admin_state_up })),
    routers: config.networkNode ? model.routers.map((r) => r.id) : [],
    floatingips: config.networkNode ? model.floatingips.filter((f) => f.router_id && f.port_id).map((f) => f.id) : [],
    portIndexes: {}, networkZones: {},
  };
}

interface FakeHost extends AgentDeps {
  taps: string[];
  applied: HostPlan[];
  applyDelayMs: number;
  failNext: number;
  inFlight: number;
  maxInFlight: number;
}

function fakeHost(compile: AgentDeps['compile'] = miniCompile): FakeHost {
  const host: FakeHost = {
    taps: [], applied: [], applyDelayMs: 0, failNext: 0, inFlight: 0, maxInFlight: 0,
    compile,
    async apply(plan) {
      host.inFlight++;
      host.maxInFlight = Math.max(host.maxInFlight, host.inFlight);
      try {
        if (host.applyDelayMs) await new Promise((r) => setTimeout(r, host.applyDelayMs));
        if (host.failNext > 0) {
          host.failNext--;
          throw new Error('simulated apply failure');
        }
        host.applied.push(plan);
        return { changed: 1 };
      } finally {
        host.inFlight--;
      }
    },
    async readFirewallFacts() { return { portIndexes: {}, networkZones: {} }; },
    async listTaps() { return [...host.taps]; },
  };
  return host;
}

const agents: Agent[] = [];
after(async () => {
  for (const a of agents) await a.stop();
});

function makeAgent(store: Store, host: FakeHost, opts: { name: string; dataPlane: boolean; networkNode?: boolean; resyncMs?: number }): Agent {
  const agent = new Agent({
    store, config: hostConfig(opts.name, opts.networkNode ?? true), deps: host, dataPlane: opts.dataPlane,
    resyncIntervalMs: opts.resyncMs ?? 60_000, reportIntervalMs: 1000, logger: silent,
  });
  agents.push(agent);
  return agent;
}

/** The next pass that matches, within ms. */
function nextPass(agent: Agent, ms: number, match: (r: PassResult) => boolean = () => true): Promise<PassResult> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { agent.off('pass', on); reject(new Error(`no matching pass within ${ms} ms`)); }, ms);
    const on = (r: PassResult) => {
      if (!match(r)) return;
      clearTimeout(timer);
      agent.off('pass', on);
      resolve(r);
    };
    agent.on('pass', on);
  });
}


describe('agent runtime: triggers and serialization (sqlite)', () => {
  let store: Store;
  let s: Services;
  before(async () => {
    const { BACKENDS } = await import('./support/backends.ts');
    store = await BACKENDS[0].openStore();
    s = createServices(store);
  });

  it('plan-only mode: registers, runs a pass on start and within ~200 ms of a feed change, and writes nothing', async () => {
    const host = fakeHost();
    const agent = makeAgent(store, host, { name: 'plan-only', dataPlane: false });
    const first = await agent.start();
    assert.equal(first.reason, 'start');
    assert.ok(first.plan, 'the plan was compiled');
    assert.equal(first.error, undefined);
    const registered = (await s.agents.list(admin, { ...emptyQuery(), filters: { host: ['plan-only'] } })).items[0];
    assert.equal(registered.alive, true);
    assert.equal((registered.configurations as any).data_plane, false);

    const t0 = performance.now();
    const net = await s.networks.create(alice, { name: 'n1' });
    const seq = await latestSeq(store.db);
    const pass = await nextPass(agent, 2000, (r) => r.reason === 'feed');
    const ms = performance.now() - t0;
    assert.ok(ms < 250, `a feed change starts a pass within ~200 ms (took ${ms.toFixed(0)} ms)`);
    assert.ok(pass.seq >= seq, 'the pass saw the change');

    // A VM port with its tap present: compiled as bound, but nothing is applied or written.
    await s.subnets.create(alice, { network_id: net.id, ip_version: 4, cidr: '10.9.0.0/24' });
    const port = await s.ports.create(alice, { network_id: net.id });
    host.taps.push(tapName(port.id as string));
    const tapped = await nextPass(agent, 2000, (r) => r.reason === 'taps' || (r.plan?.bindings.length ?? 0) > 0);
    assert.equal(tapped.plan!.bindings.length, 1);
    assert.equal(host.applied.length, 0, 'plan-only mode applies nothing');
    const shown = await s.ports.get(admin, port.id as string);
    assert.equal(shown.status, 'DOWN');
    assert.equal(shown['binding:host_id'], '');
    const dhcp = await store.db.selectFrom('ports').select('id').where('device_owner', '=', 'network:dhcp').execute();
    assert.deepEqual(dhcp, [], 'no DHCP port without a data plane to serve it');
    await agent.stop();
  });

  it('never runs two passes at once; triggers during a pass coalesce into one more', async () => {
    const host = fakeHost();
    const agent = makeAgent(store, host, { name: 'serial', dataPlane: true, networkNode: false });
    await agent.start();
    host.applyDelayMs = 150;
    const passes: PassResult[] = [];
    agent.on('pass', (r) => passes.push(r));
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => agent.runOnce(`burst-${i}`)));
    assert.equal(host.maxInFlight, 1, 'one pass at a time');
    assert.equal(passes.length, 2, 'the first runs, the other nine share the next one');
    assert.equal(results[9], results[1]);
    await agent.stop();
  });

  it('a failed pass is logged and retried: the next trigger converges', async () => {
    const host = fakeHost();
    const agent = makeAgent(store, host, { name: 'flaky', dataPlane: true, networkNode: false, resyncMs: 300 });
    host.failNext = 1;
    const first = await agent.start();
    assert.match(first.error?.message ?? '', /simulated apply failure/);
    const healed = await nextPass(agent, 2000, (r) => !r.error);
    assert.equal(healed.reason, 'resync', 'the periodic resync retries without any event');
    assert.equal(host.applied.length, 1);
    await agent.stop();
  });

  it('re-registers when an admin deletes its row, as Neutron\'s report_state does', async () => {
    const host = fakeHost();
    const agent = makeAgent(store, host, { name: 'phoenix', dataPlane: false });
    await agent.start();
    const id = (await s.agents.list(admin, { ...emptyQuery(), filters: { host: ['phoenix'] } })).items[0].id as string;
    await s.agents.delete(admin, id);
    const back = await until('re-registration', 3000, async () =>
      (await s.agents.list(admin, { ...emptyQuery(), filters: { host: ['phoenix'] } })).items[0]);
    assert.equal(back.alive, true);
    await agent.stop();
  });
});

forEachBackend((backend) => {
  describe(`agent runtime: status back to the model (${backend.name})`, () => {
    let store: Store;
    let s: Services;
    let publicNet: string;
    before(async () => {
      store = await backend.openStore();
      s = createServices(store);
      const pub = await s.networks.create(admin, {
        name: 'public', 'router:external': true, 'provider:network_type': 'flat', 'provider:physical_network': 'public',
      });
      publicNet = pub.id as string;
      await s.subnets.create(admin, { network_id: publicNet, ip_version: 4, cidr: '203.0.113.0/24', enable_dhcp: false, gateway_ip: '203.0.113.1' });
    });

    it('binds a port when its tap appears (ACTIVE, host, vif_type, revision, feed) and sets it DOWN when the tap goes', async () => {
      // The real compile: binding is its decision; only the host is simulated.
      const host = fakeHost(compileHost);
      const agent = makeAgent(store, host, { name: `compute-${backend.name}`, dataPlane: true, networkNode: false });
      await agent.start();
      const net = await s.networks.create(alice, { name: 'vms' });
      await s.subnets.create(alice, { network_id: net.id, ip_version: 4, cidr: '10.1.0.0/24' });
      const port = await s.ports.create(alice, { network_id: net.id, name: 'vm1' });
      const id = port.id as string;
      const seq = await latestSeq(store.db);

      host.taps.push(tapName(id));
      const bound = await until('port ACTIVE', 3000, async () => {
        const p = await s.ports.get(admin, id);
        return p.status === 'ACTIVE' && p;
      });
      assert.equal(bound['binding:host_id'], `compute-${backend.name}`);
      assert.equal(bound['binding:vif_type'], 'bridge');
      assert.deepEqual(bound['binding:vif_details'], { connectivity: 'l2', port_filter: true });
      assert.equal(bound.revision_number, (port.revision_number as number) + 1);
      const feed = (await readChanges(store.db, seq)).filter((c) => c.resource_id === id);
      assert.deepEqual(feed.map((c) => [c.op, c.revision_number]), [['update', bound.revision_number]]);

      // Nothing changes: no more writes, however many passes run.
      await agent.runOnce('check');
      await agent.runOnce('check');
      assert.equal((await s.ports.get(admin, id)).revision_number, bound.revision_number, 'compare first: no write without a change');

      host.taps.splice(0);
      const down = await until('port DOWN', 3000, async () => {
        const p = await s.ports.get(admin, id);
        return p.status === 'DOWN' && p;
      });
      assert.equal(down['binding:host_id'], `compute-${backend.name}`, 'the binding stays');

      // Admin down while plugged: bound, not ACTIVE.
      await s.ports.update(alice, id, { admin_state_up: false });
      host.taps.push(tapName(id));
      await agent.runOnce('check');
      assert.equal((await s.ports.get(admin, id)).status, 'DOWN');
      await agent.stop();
    });

    it('reports floating IPs ACTIVE on the network node serving their router, DOWN once disassociated', async () => {
      const net = await s.networks.create(alice, { name: 'fipnet' });
      const subnet = await s.subnets.create(alice, { network_id: net.id, ip_version: 4, cidr: '10.2.0.0/24' });
      const router = await s.routers.create(alice, { external_gateway_info: { network_id: publicNet } });
      await s.routers.addInterface(alice, router.id as string, { subnet_id: subnet.id });
      const port = await s.ports.create(alice, { network_id: net.id });
      const fip = await s.floatingIps.create(alice, { floating_network_id: publicNet, port_id: port.id });
      const config = hostConfig(`netnode-${backend.name}`);
      const facts: HostFacts = { taps: [], portIndexes: {}, networkZones: {} };
      const plan = miniCompile(await loadModel(store, config), config, facts);
      const r1 = await reportStatus(store, plan, { host: config.host, networkNode: true });
      assert.ok(r1.floatingips.includes(fip.id as string));
      assert.equal((await s.floatingIps.get(alice, fip.id as string)).status, 'ACTIVE');
      const again = await reportStatus(store, plan, { host: config.host, networkNode: true });
      assert.deepEqual(again, { ports: [], floatingips: [] }, 'nothing to write the second time');

      await s.floatingIps.update(alice, fip.id as string, { port_id: null });
      const plan2 = miniCompile(await loadModel(store, config), config, facts);
      await reportStatus(store, plan2, { host: config.host, networkNode: true });
      const shown = await s.floatingIps.get(alice, fip.id as string);
      assert.equal(shown.status, 'DOWN');
      // A compute node never decides floating IPs.
      const r3 = await reportStatus(store, { ...plan, floatingips: [fip.id as string] }, { host: 'compute-x', networkNode: false });
      assert.deepEqual(r3.floatingips, []);
    });

    it('network node: one DHCP port per network with DHCP, addressed on each DHCP subnet, removed with the last one', async () => {
      const host = fakeHost();
      const name = `dhcp-node-${backend.name}`;
      const agent = makeAgent(store, host, { name, dataPlane: true, networkNode: true });
      await agent.start();
      const net = await s.networks.create(alice, { name: 'with-dhcp' });
      const v4 = await s.subnets.create(alice, { network_id: net.id, ip_version: 4, cidr: '10.3.0.0/24' });
      const dhcpPorts = () => s.ports.list(admin, { ...emptyQuery(), filters: { network_id: [net.id as string], device_owner: ['network:dhcp'] } });
      const created = await until('a DHCP port', 3000, async () => (await dhcpPorts()).items[0]);
      assert.equal(created.device_id, `dhcp${hostUuid(name)}-${net.id}`);
      assert.equal(created.project_id, alice.projectId, 'owned by the network\'s project, as in Neutron');
      assert.equal(created['binding:host_id'], name);
      assert.deepEqual((created.fixed_ips as any[]).map((f) => f.subnet_id), [v4.id]);

      const second = await s.subnets.create(alice, { network_id: net.id, ip_version: 4, cidr: '10.4.0.0/24' });
      const readdressed = await until('an address on the new subnet', 3000, async () => {
        const p = (await dhcpPorts()).items[0];
        return (p.fixed_ips as any[]).length === 2 && p;
      });
      assert.deepEqual((readdressed.fixed_ips as any[]).map((f) => f.subnet_id).sort(), [v4.id, second.id].sort());
      assert.equal((await dhcpPorts()).items.length, 1, 'still one port');

      const noDhcp = await s.networks.create(alice, { name: 'no-dhcp' });
      await s.subnets.create(alice, { network_id: noDhcp.id, ip_version: 4, cidr: '10.5.0.0/24', enable_dhcp: false });
      await agent.runOnce('check');
      const none = await s.ports.list(admin, { ...emptyQuery(), filters: { network_id: [noDhcp.id as string] } });
      assert.deepEqual(none.items, [], 'no DHCP port where no subnet has DHCP');

      await s.subnets.delete(alice, second.id as string);
      await s.subnets.delete(alice, v4.id as string);
      await until('the DHCP port removed', 3000, async () => (await dhcpPorts()).items.length === 0);
      await agent.stop();
    });
  });
});

forEachBackend((backend) => {
  describe(`loadModel (${backend.name})`, () => {
    let store: Store;
    let s: Services;
    before(async () => {
      store = await backend.openStore();
      s = createServices(store);
    });

    it('reads networks, subnets, ports with everything compile needs, routers with their interfaces, floating IPs, policy and peers', async () => {
      const pub = await s.networks.create(admin, {
        name: 'public', 'router:external': true, 'provider:network_type': 'flat', 'provider:physical_network': 'public',
      });
      await s.subnets.create(admin, { network_id: pub.id, ip_version: 4, cidr: '203.0.113.0/24', enable_dhcp: false });
      const net = await s.networks.create(alice, { name: 'n' });
      const a = await s.subnets.create(alice, { network_id: net.id, ip_version: 4, cidr: '10.0.0.0/24', dns_nameservers: ['192.0.2.53'] });
      const b = await s.subnets.create(alice, { network_id: net.id, ip_version: 4, cidr: '10.0.1.0/24' });
      const router = await s.routers.create(alice, { external_gateway_info: { network_id: pub.id } });
      await s.routers.addInterface(alice, router.id as string, { subnet_id: a.id });
      const port = await s.ports.create(alice, {
        network_id: net.id, fixed_ips: [{ subnet_id: b.id, ip_address: '10.0.1.20' }, { subnet_id: a.id, ip_address: '10.0.0.30' }],
        allowed_address_pairs: [{ ip_address: '10.0.0.200' }], extra_dhcp_opts: [{ opt_name: 'mtu', opt_value: '1400' }],
      });
      const fip = await s.floatingIps.create(alice, { floating_network_id: pub.id, port_id: port.id, fixed_ip_address: '10.0.0.30' });
      await s.agents.register({ host: 'peer-1', reportInterval: 5, configurations: { underlay_ip: '192.0.2.1', data_plane: true } });
      await s.agents.register({ host: 'peer-plan-only', reportInterval: 5, configurations: { underlay_ip: '192.0.2.2', data_plane: false } });
      await s.agents.register({ host: 'me', reportInterval: 5, configurations: { underlay_ip: '192.0.2.3', data_plane: true } });

      const model = await loadModel(store, hostConfig('me'));
      const n = model.networks.find((x) => x.id === net.id)!;
      assert.equal(n.network_type, 'vxlan');
      assert.equal(typeof n.segmentation_id, 'number');
      assert.equal(model.networks.find((x) => x.id === pub.id)!.router_external, true);
      assert.deepEqual(model.subnets.find((x) => x.id === a.id)!.dns_nameservers, ['192.0.2.53']);
      const p = model.ports.find((x) => x.id === port.id)!;
      assert.deepEqual(p.fixed_ips, port.fixed_ips, 'in the order the API lists them');
      assert.equal(p.fixed_ips.length, 2);
      assert.equal(p.security_groups.length, 1);
      assert.deepEqual(p.allowed_address_pairs, [{ ip_address: '10.0.0.200', mac_address: port.mac_address }]);
      assert.deepEqual(p.extra_dhcp_opts, [{ opt_name: 'mtu', opt_value: '1400', ip_version: 4 }]);
      const r = model.routers.find((x) => x.id === router.id)!;
      assert.equal(r.interface_port_ids.length, 1);
      assert.equal(model.ports.find((x) => x.id === r.interface_port_ids[0])!.device_owner, 'network:router_interface');
      assert.equal(model.ports.find((x) => x.id === r.gw_port_id)!.device_owner, 'network:router_gateway');
      const f = model.floatingips.find((x) => x.id === fip.id)!;
      assert.deepEqual([f.router_id, f.port_id, f.fixed_ip_address], [router.id, port.id, '10.0.0.30']);
      assert.ok(model.security.ports.some((x) => x.id === port.id));
      assert.deepEqual(model.peers, [{ host: 'peer-1', underlay_ip: '192.0.2.1' }], 'alive, with an underlay and a data plane, not this host');
    });
  });
});

// ---- `nucleon agent` as a user runs it (a child process; root drops to nobody for plan-only mode)

const ROOT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const NOBODY = 65534;
const cliChildren = new Set<ChildProcess>();
after(() => {
  for (const c of cliChildren) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** `nucleon ARGS` as a non-root user (setpriv to nobody when the tests run as root). */
function nucleonAsUser(args: string[]): ChildProcess {
  const argv = [process.execPath, path.join(ROOT_DIR, 'bin/nucleon.js'), ...args];
  const asRoot = process.getuid?.() === 0;
  const cmd = asRoot ? ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', ...argv] : argv;
  const proc = spawn(cmd[0], cmd.slice(1), { cwd: ROOT_DIR, env: { ...process.env, HOME: os.tmpdir() }, stdio: ['ignore', 'pipe', 'pipe'] });
  cliChildren.add(proc);
  proc.on('exit', () => cliChildren.delete(proc));
  return proc;
}

function output(proc: ChildProcess): { text: () => string; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
  let text = '';
  proc.stdout!.on('data', (d) => { text += d; });
  proc.stderr!.on('data', (d) => { text += d; });
  return { text: () => text, exit: new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal }))) };
}

describe('nucleon agent (CLI)', () => {
  let dir: string;
  let store: Store;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nucleon-agent-cli-'));
    store = await openStore({ dataDir: dir });
    const s = createServices(store);
    const net = await s.networks.create(alice, { name: 'cli' });
    await s.subnets.create(alice, { network_id: net.id, ip_version: 4, cidr: '10.7.0.0/24' });
    if (process.getuid?.() === 0) {
      fs.chmodSync(dir, 0o755);
      for (const f of fs.readdirSync(dir)) fs.chownSync(path.join(dir, f), NOBODY, NOBODY);
      fs.chownSync(dir, NOBODY, NOBODY);
    }
  });
  after(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('without root: plan-only mode, said on start; --once registers, compiles and changes nothing', async () => {
    const run = output(nucleonAsUser(['agent', '--data-dir', dir, '--host', 'cli-host', '--once', '--namespace-prefix', 'nag-cli-']));
    const { code } = await run.exit;
    assert.equal(code, 0, run.text());
    assert.match(run.text(), /plan-only mode: the data plane is off \(not root\)/);
    assert.match(run.text(), /plan compiled, nothing applied/);
    const row = await store.db.selectFrom('agents').selectAll().where('host', '=', 'cli-host').executeTakeFirstOrThrow();
    assert.equal(JSON.parse(row.configurations).data_plane, false);
    const dhcp = await store.db.selectFrom('ports').select('id').where('device_owner', '=', 'network:dhcp').execute();
    assert.deepEqual(dhcp, []);
  });

  it('--print-plan prints the host plan as JSON', async () => {
    const proc = nucleonAsUser(['agent', '--data-dir', dir, '--host', 'cli-host', '--print-plan', '--no-network-node', '--log-level', 'silent']);
    const run = output(proc);
    assert.equal((await run.exit).code, 0, run.text());
    const plan = JSON.parse(run.text());
    assert.equal(plan.host, 'cli-host');
    assert.deepEqual(Object.keys(plan), ['host', 'namespaces', 'firewall', 'dhcp', 'bindings', 'routers', 'floatingips', 'portIndexes', 'networkZones']);
  });

  it('runs until SIGTERM, then stops cleanly', async () => {
    const proc = nucleonAsUser(['agent', '--data-dir', dir, '--host', 'cli-long', '--resync-interval', '1']);
    const run = output(proc);
    await until('the agent started', 20_000, async () => /nucleon agent .*host cli-long/.test(run.text()));
    const t0 = Date.now();
    proc.kill('SIGTERM');
    const { code } = await run.exit;
    assert.equal(code, 0, run.text());
    assert.match(run.text(), /SIGTERM: shutting down/);
    assert.ok(Date.now() - t0 < 5000);
  });

  it('refuses a malformed bridge mapping', async () => {
    const run = output(nucleonAsUser(['agent', '--data-dir', dir, '--bridge-mapping', 'public', '--once']));
    assert.equal((await run.exit).code, 1);
    assert.match(run.text(), /--bridge-mapping expects physnet:name, got 'public'/);
  });
});
