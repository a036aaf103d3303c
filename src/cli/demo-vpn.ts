// `nucleon demo vpn`, and the pieces it is built from, shared with the
// two-clouds test and bench:vpn so that what the demo shows is what is tested
// and measured: a "cloud" is an in-process Nucleon (own data dir, SQLite) with
// its agent on a namespace acting as the host (with br-ex); a "site" is a
// tenant network, a router with its gateway on the external network, and a
// sandbox VM; a VPN side is the policies, a VPN service, endpoint groups and
// an ipsec-site-connection, all created through the API.
// Everything on the machine is named <prefix>…; destroyPrefix() removes it.
import { until } from '../util/until.ts';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { startNucleon, type Nucleon } from '../server.ts';
import { createAgent, type Agent } from '../agent/index.ts';
import type { HostConfig } from '../agent/model.ts';
import { listNamespaces, namespacePids, run, runOk, terminate } from '../agent/apply/exec.ts';
import { createSandboxVm, deleteSandboxVm, sandboxDhcp } from '../agent/sandbox.ts';

export type Json = any;

export interface Api {
  call(method: string, p: string, body?: unknown, expect?: number): Promise<Json>;
  get(p: string): Promise<Json>;
  post(p: string, body: unknown): Promise<Json>;
  del(p: string): Promise<void>;
}

/** A small fetch client that throws on an unexpected status, with the API's message. */
export function api(baseUrl: string, token: string): Api {
  const call = async (method: string, p: string, body?: unknown, expect?: number) => {
    const res = await fetch(`${baseUrl}${p}`, {
      method, signal: AbortSignal.timeout(30_000),
      headers: { 'X-Auth-Token': token, Accept: 'application/json', ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    const want = expect ?? (method === 'POST' ? 201 : method === 'DELETE' ? 204 : 200);
    if (res.status !== want) throw new Error(`${method} ${p}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  return {
    call,
    get: (p) => call('GET', p),
    post: (p, b) => call('POST', p, b),
    del: async (p) => { await call('DELETE', p); },
  };
}


export { until };

export interface VpnCloud {
  name: string;
  nucleon: Nucleon;
  agent: Agent;
  hostNs: string;
  dataDir: string;
  admin: Api;
  /** A member of project `demo`: tenants build their sites and VPNs. */
  member: Api;
  logFile: string;
  close(): Promise<void>;
}

/**
 * A namespace acting as the host (lo, br-ex), a Nucleon on a fresh data dir
 * (SQLite, ephemeral ports) and its agent on that namespace. The agent is made
 * here rather than by startNucleon so that its log goes to a file a failure
 * can quote. Fast resync/report intervals: the demo and tests wait on them.
 */
export async function startVpnCloud(opts: { name: string; prefix: string; hostNs: string }): Promise<VpnCloud> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `${opts.prefix}data-`));
  const logFile = path.join(dataDir, 'agent.log');
  await runOk(['ip', 'netns', 'add', opts.hostNs]);
  await runOk(['ip', '-n', opts.hostNs, '-batch', '-'], 'link set dev lo up\nlink add br-ex type bridge\nlink set dev br-ex up\n');
  const adminPassword = crypto.randomBytes(12).toString('hex');
  const nucleon = await startNucleon({
    dataDir, host: '127.0.0.1', networkPort: 0, identityPort: 0, adminPassword, logger: false, writeClouds: false,
  });
  const config: HostConfig = {
    host: `${opts.prefix}node`, bridgeMappings: { public: 'br-ex' }, vlanInterfaces: {}, underlayIp: null, underlayInterface: null,
    networkNode: true, namespacePrefix: opts.prefix, stateDir: path.join(dataDir, 'agent'),
  };
  const agent = createAgent({
    store: nucleon.store, config, hostNamespace: opts.hostNs, dataPlane: true, resyncIntervalMs: 3000, reportIntervalMs: 1000,
    secretKeyFile: path.join(dataDir, 'secret.key'),
    logger: pino({ level: 'debug' }, pino.destination({ dest: logFile, append: true, sync: true })),
  });
  await agent.start();
  await nucleon.identity.ensureUser({ project: 'demo', user: 'demo', password: adminPassword, role: 'member' });
  const url = nucleon.endpoints.networkUrl;
  const admin = api(url, await nucleon.identity.issueToken('admin', adminPassword, 'admin'));
  const member = api(url, await nucleon.identity.issueToken('demo', adminPassword, 'demo'));
  let closed: Promise<void> | null = null;
  return {
    name: opts.name, nucleon, agent, hostNs: opts.hostNs, dataDir, admin, member, logFile,
    close: () => (closed ??= (async () => {
      await agent.stop().catch(() => {});
      await nucleon.close().catch(() => {});
      fs.rmSync(dataDir, { recursive: true, force: true });
    })()),
  };
}

export function agentLogTail(cloud: VpnCloud, lines = 30): string {
  try {
    return fs.readFileSync(cloud.logFile, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no agent log)';
  }
}

/** The shared "internet": 203.0.113.0/24 on physnet public (br-ex); pool given per cloud so two clouds never hand out the same address. */
export async function createExternal(cloud: VpnCloud, pool: { start: string; end: string }): Promise<string> {
  const net = (await cloud.admin.post('/v2.0/networks', { network: {
    name: 'public', 'router:external': true, 'provider:network_type': 'flat', 'provider:physical_network': 'public',
  } })).network;
  await cloud.admin.post('/v2.0/subnets', { subnet: {
    network_id: net.id, ip_version: 4, cidr: '203.0.113.0/24', gateway_ip: '203.0.113.1', enable_dhcp: false, allocation_pools: [pool],
  } });
  return net.id;
}

export interface Site {
  name: string;
  cidr: string;
  networkId: string;
  subnetId: string;
  routerId: string;
  gatewayIp: string;
  vm: string;
  vmIp: string;
}

/** Network, subnet, router with its gateway on the external network, a port and a sandbox VM on it (DHCP). */
export async function createSite(cloud: VpnCloud, o: { name: string; cidr: string; externalId: string; vm: string }): Promise<Site> {
  const a = cloud.member;
  const net = (await a.post('/v2.0/networks', { network: { name: `${o.name}-net` } })).network;
  const subnet = (await a.post('/v2.0/subnets', { subnet: { network_id: net.id, name: `${o.name}-subnet`, ip_version: 4, cidr: o.cidr } })).subnet;
  const router = (await a.post('/v2.0/routers', { router: { name: `${o.name}-router`, external_gateway_info: { network_id: o.externalId } } })).router;
  await a.call('PUT', `/v2.0/routers/${router.id}/add_router_interface`, { subnet_id: subnet.id });
  const port = (await a.post('/v2.0/ports', { port: { network_id: net.id, name: `${o.name}-vm` } })).port;
  await createSandboxVm({ port: { id: port.id, mac_address: port.mac_address, mtu: net.mtu }, name: o.vm, hostNamespace: cloud.hostNs });
  await until(`${o.name}'s VM port ACTIVE`, 20_000, async () => (await a.get(`/v2.0/ports/${port.id}`)).port.status === 'ACTIVE');
  const addr = await sandboxDhcp(o.vm, 15);
  if (!addr) throw new Error(`${o.vm}: no address`);
  return {
    name: o.name, cidr: o.cidr, networkId: net.id, subnetId: subnet.id, routerId: router.id,
    gatewayIp: router.external_gateway_info.external_fixed_ips[0].ip_address, vm: o.vm, vmIp: addr.split('/')[0],
  };
}

export interface VpnSide {
  ikePolicyId: string;
  ipsecPolicyId: string;
  serviceId: string;
  localEpId: string;
  peerEpId: string;
}

/**
 * Policies, a VPN service on the site's router (no subnet: the endpoint-group
 * form), the local (subnet) and peer (cidr) endpoint groups, and an ingress
 * rule in the project's default security group for the peer LAN: the VPN
 * routes the other side's traffic in, the VMs' security groups still decide
 * (the default group only admits its own members).
 */
export async function createVpnSide(cloud: VpnCloud, site: Site, peerCidr: string): Promise<VpnSide> {
  const a = cloud.member;
  const sg = (await a.get('/v2.0/security-groups?name=default')).security_groups[0];
  await a.post('/v2.0/security-group-rules', { security_group_rule: {
    security_group_id: sg.id, direction: 'ingress', ethertype: 'IPv4', remote_ip_prefix: peerCidr,
  } }).catch((e: Error) => { if (!/SecurityGroupRuleExists|409/.test(e.message)) throw e; });
  const ike = (await a.post('/v2.0/vpn/ikepolicies', { ikepolicy: { name: `${site.name}-ike`, ike_version: 'v2', pfs: 'group14' } })).ikepolicy;
  const esp = (await a.post('/v2.0/vpn/ipsecpolicies', { ipsecpolicy: { name: `${site.name}-esp`, pfs: 'group14' } })).ipsecpolicy;
  const svc = (await a.post('/v2.0/vpn/vpnservices', { vpnservice: { name: `${site.name}-vpn`, router_id: site.routerId } })).vpnservice;
  const local = (await a.post('/v2.0/vpn/endpoint-groups', { endpoint_group: { name: `${site.name}-local`, type: 'subnet', endpoints: [site.subnetId] } })).endpoint_group;
  const peer = (await a.post('/v2.0/vpn/endpoint-groups', { endpoint_group: { name: `${site.name}-peer`, type: 'cidr', endpoints: [peerCidr] } })).endpoint_group;
  return { ikePolicyId: ike.id, ipsecPolicyId: esp.id, serviceId: svc.id, localEpId: local.id, peerEpId: peer.id };
}

/** The ipsec-site-connection to the other side's router gateway (its address is also its IKE id). */
export async function createConnection(cloud: VpnCloud, side: VpnSide, o: { name: string; peerAddress: string; psk: string }): Promise<string> {
  return (await cloud.member.post('/v2.0/vpn/ipsec-site-connections', { ipsec_site_connection: {
    name: o.name, vpnservice_id: side.serviceId, ikepolicy_id: side.ikePolicyId, ipsecpolicy_id: side.ipsecPolicyId,
    local_ep_group_id: side.localEpId, peer_ep_group_id: side.peerEpId,
    peer_address: o.peerAddress, peer_id: o.peerAddress, psk: o.psk,
  } })).ipsec_site_connection.id;
}

export const connectionStatus = async (cloud: VpnCloud, id: string): Promise<string> =>
  (await cloud.member.get(`/v2.0/vpn/ipsec-site-connections/${id}`)).ipsec_site_connection.status;
export const serviceStatus = async (cloud: VpnCloud, id: string): Promise<string> =>
  (await cloud.member.get(`/v2.0/vpn/vpnservices/${id}`)).vpnservice.status;

/** One ping (exit 0 = a reply); -W in seconds (fractions allowed by iputils). */
export async function pingOnce(vm: string, ip: string, waitS = 1): Promise<boolean> {
  return (await run(['ip', 'netns', 'exec', vm, 'ping', '-n', '-c1', `-W${waitS}`, ip])).code === 0;
}

export async function ping(vm: string, ip: string, count = 3): Promise<{ ok: boolean; output: string }> {
  const r = await run(['ip', 'netns', 'exec', vm, 'ping', '-n', '-c', String(count), '-i', '0.2', '-W', '1', ip]);
  return { ok: r.code === 0, output: (r.stdout + r.stderr).trim() };
}

/**
 * Removes every namespace named <prefix>… (VMs through deleteSandboxVm; in
 * the others, their processes first: charons, dnsmasq) and their /etc/netns
 * dirs. Deleting a namespace removes its veths and bridges with it.
 */
export async function destroyPrefix(prefix: string): Promise<void> {
  const mine = (await listNamespaces()).filter((n) => n.startsWith(prefix));
  // Routers and DHCP first, hosts last: host namespaces hold the taps the others hang on.
  mine.sort((x, y) => Number(x.includes('host')) - Number(y.includes('host')));
  for (const ns of mine) {
    await terminate(await namespacePids(ns).catch(() => [])).catch(() => {});
    if (fs.existsSync(`/run/nucleon/sandbox/${ns}`)) { await deleteSandboxVm(ns).catch(() => {}); continue; }
    await run(['ip', 'netns', 'del', ns]);
    fs.rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- the demo

const PREFIX = 'ndemo-';
const PSK = crypto.randomBytes(16).toString('hex');

/** Runs the demo; resolves with the exit code. Cleans up on success, failure and SIGINT/SIGTERM. */
export async function runVpnDemo(out: (line: string) => void = console.log): Promise<number> {
  if (process.getuid?.() !== 0) {
    out('nucleon demo vpn needs root: it creates network namespaces, bridges and strongSwan daemons (try sudo).');
    return 2;
  }
  for (const bin of ['/usr/sbin/charon-systemd', '/usr/sbin/swanctl']) {
    if (!fs.existsSync(bin)) { out(`nucleon demo vpn needs strongSwan (${bin} missing; apt-get install charon-systemd libcharon-extra-plugins)`); return 2; }
  }
  if ((await listNamespaces()).some((n) => n.startsWith(PREFIX))) {
    out(`leftover ${PREFIX}* namespaces from an earlier run: removing them`);
    await destroyPrefix(PREFIX);
  }
  const t0 = Date.now();
  let interrupted = false;
  const step = (s: string) => {
    // Interrupted: stop before the next step creates anything the cleanup already swept past.
    if (interrupted) throw new Error('interrupted');
    out(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(4)} s] ${s}`);
  };
  let cloud: VpnCloud | null = null;
  let cleaning: Promise<void> | null = null;
  const cleanup = () => (cleaning ??= (async () => {
    await cloud?.close();
    await destroyPrefix(PREFIX);
  })());
  // Ctrl-C in the middle still removes everything before exiting.
  const onSignal = (sig: NodeJS.Signals) => {
    interrupted = true;
    out(`\n${sig}: cleaning up`);
    // A second sweep: a step under way when the signal came may have added a namespace after the first.
    void cleanup().then(() => new Promise((r) => setTimeout(r, 500))).then(() => destroyPrefix(PREFIX)).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    step(`starting Nucleon (SQLite in a temp dir) with its agent on host namespace ${PREFIX}host (br-ex)`);
    cloud = await startVpnCloud({ name: 'demo', prefix: PREFIX, hostNs: `${PREFIX}host` });
    out(`         API ${cloud.nucleon.endpoints.networkUrl}, identity ${cloud.nucleon.endpoints.identityUrl}`);
    step('external network "public" 203.0.113.0/24 (the shared internet, flat on br-ex)');
    const ext = await createExternal(cloud, { start: '203.0.113.10', end: '203.0.113.100' });
    step('site A: network 10.10.10.0/24, router with gateway, VM (sandbox) by DHCP');
    const a = await createSite(cloud, { name: 'site-a', cidr: '10.10.10.0/24', externalId: ext, vm: `${PREFIX}vmA` });
    out(`         router gateway ${a.gatewayIp}, VM ${a.vm} ${a.vmIp}`);
    step('site B: network 20.20.20.0/24, router with gateway, VM (sandbox) by DHCP');
    const b = await createSite(cloud, { name: 'site-b', cidr: '20.20.20.0/24', externalId: ext, vm: `${PREFIX}vmB` });
    out(`         router gateway ${b.gatewayIp}, VM ${b.vm} ${b.vmIp}`);
    step(`before the VPN: ping ${b.vmIp} from VM A → ${(await pingOnce(a.vm, b.vmIp)) ? 'reply (unexpected!)' : 'no reply, as it should be'}`);
    step('IKE policy (v2, group14), IPsec policy, a VPN service per router, endpoint groups (local subnet, peer CIDR),');
    out('         a security group rule admitting the peer LAN');
    const sa = await createVpnSide(cloud, a, b.cidr);
    const sb = await createVpnSide(cloud, b, a.cidr);
    step(`ipsec-site-connections A → ${b.gatewayIp} and B → ${a.gatewayIp} (same PSK)`);
    const ca = await createConnection(cloud, sa, { name: 'a-to-b', peerAddress: b.gatewayIp, psk: PSK });
    const cb = await createConnection(cloud, sb, { name: 'b-to-a', peerAddress: a.gatewayIp, psk: PSK });
    step('waiting for both connections to be ACTIVE');
    const c = cloud;
    await until('both connections ACTIVE', 30_000, async () =>
      (await connectionStatus(c, ca)) === 'ACTIVE' && (await connectionStatus(c, cb)) === 'ACTIVE', 200)
      .catch((e) => { throw new Error(`${e.message}\nagent log:\n${agentLogTail(c)}`); });
    await until('both VPN services ACTIVE', 10_000, async () =>
      (await serviceStatus(c, sa.serviceId)) === 'ACTIVE' && (await serviceStatus(c, sb.serviceId)) === 'ACTIVE', 200);
    step('tunnel status from the API:');
    for (const [kind, p, key, id] of [
      ['connection', 'ipsec-site-connections', 'ipsec_site_connection', ca], ['connection', 'ipsec-site-connections', 'ipsec_site_connection', cb],
      ['service', 'vpnservices', 'vpnservice', sa.serviceId], ['service', 'vpnservices', 'vpnservice', sb.serviceId],
    ] as const) {
      const r = (await c.member.get(`/v2.0/vpn/${p}/${id}`))[key];
      out(`         ${kind.padEnd(10)} ${r.name.padEnd(10)} ${id}  status=${r.status}${r.peer_address ? `  peer=${r.peer_address}` : ''}`);
    }
    let failed = false;
    for (const [from, to] of [[a, b], [b, a]] as const) {
      step(`ping -c 3 ${to.vmIp} from VM ${from.name} (${from.vmIp}) through the tunnel:`);
      const r = await ping(from.vm, to.vmIp, 3);
      out(r.output.split('\n').map((l) => `         ${l}`).join('\n'));
      if (!r.ok || !/ 0% packet loss/.test(r.output)) failed = true;
    }
    if (failed) throw new Error('pings through the tunnel lost packets');
    step('cleaning up');
    await cleanup();
    step('done: VPN up, pings through, everything removed');
    return 0;
  } catch (e) {
    // Interrupted: the steps under way fail as their cloud goes away; the signal handler reports and exits.
    if (interrupted) return 130;
    out(`nucleon demo vpn FAILED: ${e instanceof Error ? e.message : String(e)}`);
    out('cleaning up');
    await cleanup().catch(() => {});
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
