// VPNaaS compile, pure: Neutron policy names → strongSwan proposals, the
// vici load-conn body, instances per router, unreachable routes for peer
// CIDRs, and the hook in compileHost. Plus SA list → status mapping.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { HostConfig, LogicalModel, ModelIpsecConnection } from '../src/agent/model.ts';
import { childProposals, connectionConfig, dhGroup, encryption, ikeProposal, planIpsec, strongswanConf } from '../src/agent/compile/ipsec.ts';
import { compileHost } from '../src/agent/compile/index.ts';
import { connectionStatus, instanceStatuses, summariseSas } from '../src/agent/vpn/status.ts';
import { negotiationFailure } from '../src/agent/apply/ipsec.ts';

const R1 = 'r1000000-0000-4000-8000-000000000001';
const R2 = 'r2000000-0000-4000-8000-000000000002';

function conn(id: string, over: Partial<ModelIpsecConnection> = {}): ModelIpsecConnection {
  return {
    id, vpnservice_id: 'svc1', router_id: R1, admin_state_up: true, peer_address: '198.51.100.2', peer_id: '198.51.100.2',
    local_cidrs: ['10.1.0.0/24'], peer_cidrs: ['10.2.0.0/24', '10.3.0.0/24'], psk: 'top-secret-psk', mtu: 1500,
    initiator: 'bi-directional', dpd: { action: 'hold', interval: 30, timeout: 120 },
    ike: { ike_version: 'v2', auth_algorithm: 'sha1', encryption_algorithm: 'aes-128', pfs: 'group5', phase1_negotiation_mode: 'main', lifetime: { units: 'seconds', value: 3600 } },
    ipsec: { transform_protocol: 'esp', encapsulation_mode: 'tunnel', auth_algorithm: 'sha1', encryption_algorithm: 'aes-128', pfs: 'group5', lifetime: { units: 'seconds', value: 3600 } },
    ...over,
  };
}

describe('IPsec compile: proposals', () => {
  it('maps encryption, integrity and DH names', () => {
    assert.deepEqual(encryption('aes-128'), { alg: 'aes128', aead: false });
    assert.deepEqual(encryption('aes-256-gcm-16'), { alg: 'aes256gcm16', aead: true });
    assert.deepEqual(encryption('3des'), { alg: '3des', aead: false });
    assert.deepEqual(encryption('aes-192-ctr'), { alg: 'aes192ctr', aead: false });
    assert.throws(() => encryption('rot13'), /unsupported/);
    const groups: Record<string, string> = {
      group2: 'modp1024', group5: 'modp1536', group14: 'modp2048', group15: 'modp3072', group16: 'modp4096', group17: 'modp6144',
      group18: 'modp8192', group19: 'ecp256', group20: 'ecp384', group21: 'ecp521', group22: 'modp1024s160', group23: 'modp2048s224',
      group24: 'modp2048s256', group25: 'ecp192', group26: 'ecp224', group27: 'ecp224bp', group28: 'ecp256bp', group29: 'ecp384bp',
      group30: 'ecp512bp', group31: 'curve25519',
    };
    for (const [g, n] of Object.entries(groups)) assert.equal(dhGroup(g), n);
    assert.equal(dhGroup('none'), null);
  });

  it('builds IKE proposals (AEAD gets a PRF) and ESP/AH proposals (PFS appended)', () => {
    const c = conn('c1');
    assert.equal(ikeProposal(c.ike), 'aes128-sha1-modp1536');
    assert.equal(ikeProposal({ ...c.ike, encryption_algorithm: 'aes-256-gcm-16', auth_algorithm: 'sha256', pfs: 'group19' }), 'aes256gcm16-prfsha256-ecp256');
    assert.equal(ikeProposal({ ...c.ike, auth_algorithm: 'aes-xcbc' }), 'aes128-aesxcbc-modp1536');
    assert.deepEqual(childProposals(c.ipsec), { esp_proposals: ['aes128-sha1-modp1536'] });
    assert.deepEqual(childProposals({ ...c.ipsec, encryption_algorithm: 'aes-256-gcm-16' }), { esp_proposals: ['aes256gcm16-modp1536'] });
    assert.deepEqual(childProposals({ ...c.ipsec, transform_protocol: 'ah', auth_algorithm: 'aes-cmac' }), { ah_proposals: ['aescmac-modp1536'] });
    assert.deepEqual(childProposals({ ...c.ipsec, transform_protocol: 'ah-esp', pfs: 'none' }), { esp_proposals: ['aes128-sha1'], ah_proposals: ['sha1'] });
  });
});

describe('IPsec compile: connections and instances', () => {
  it('the load-conn body: addresses, ids, children, start/dpd actions, lifetimes; no PSK', () => {
    const body = connectionConfig(conn('c1'), '203.0.113.10') as Record<string, any>;
    const c = body.c1;
    assert.equal(c.version, '2');
    assert.deepEqual(c.local_addrs, ['203.0.113.10']);
    assert.deepEqual(c.remote_addrs, ['198.51.100.2']);
    assert.deepEqual(c.local, { auth: 'psk', id: '203.0.113.10' });
    assert.deepEqual(c.remote, { auth: 'psk', id: '198.51.100.2' });
    assert.equal(c.dpd_delay, '30s');
    assert.equal(c.dpd_timeout, undefined, 'dpd_timeout is IKEv1 only');
    assert.equal(c.rekey_time, '3600s');
    const child = c.children.c1;
    assert.deepEqual(child.local_ts, ['10.1.0.0/24']);
    assert.deepEqual(child.remote_ts, ['10.2.0.0/24', '10.3.0.0/24']);
    assert.equal(child.mode, 'tunnel');
    assert.equal(child.start_action, 'trap|start');
    assert.equal(child.dpd_action, 'trap');
    assert.equal(child.close_action, 'none');
    assert.equal(child.life_time, '3600s');
    assert.ok(!JSON.stringify(body).includes('top-secret-psk'));

    const v1 = (connectionConfig(conn('c2', {
      initiator: 'response-only', dpd: { action: 'disabled', interval: 30, timeout: 120 },
      ike: { ...conn('x').ike, ike_version: 'v1', phase1_negotiation_mode: 'aggressive' },
      ipsec: { ...conn('x').ipsec, encapsulation_mode: 'transport', lifetime: { units: 'kilobytes', value: 1000 } },
    }), '203.0.113.10') as Record<string, any>).c2;
    assert.equal(v1.version, '1');
    assert.equal(v1.aggressive, 'yes');
    assert.equal(v1.dpd_delay, undefined);
    assert.equal(v1.children.c2.start_action, 'trap');
    assert.equal(v1.children.c2.mode, 'transport');
    assert.equal(v1.children.c2.life_bytes, '1024000');
    const v1dpd = (connectionConfig(conn('c3', { ike: { ...conn('x').ike, ike_version: 'v1' } }), '203.0.113.10') as Record<string, any>).c3;
    assert.equal(v1dpd.dpd_timeout, '120s');
  });

  it('one instance per router; admin-down connections not loaded but their CIDRs unreachable; unknown routers skipped; errors reported', () => {
    const r = planIpsec([
      conn('c2'),
      conn('c1', { peer_cidrs: ['10.2.0.0/24'] }),
      conn('c3', { admin_state_up: false, peer_cidrs: ['10.9.0.0/24'] }),
      conn('c4', { ike: { ...conn('x').ike, encryption_algorithm: 'rot13' } }),
      conn('c5', { router_id: 'elsewhere' }),
      conn('c6', { router_id: R2 }),
    ], [
      { router_id: R1, namespace: 'qrouter-r1', gatewayIp: '203.0.113.10' },
      { router_id: R2, namespace: 'qrouter-r2', gatewayIp: null },
    ], '/var/lib/nucleon');
    assert.equal(r.instances.length, 1);
    const inst = r.instances[0];
    assert.equal(inst.dir, `/var/lib/nucleon/ipsec/${R1}`);
    assert.deepEqual(inst.connections.map((c) => c.id), ['c1', 'c2']);
    assert.deepEqual(inst.connections[0].secret, { id: 'psk-c1', type: 'IKE', data: 'top-secret-psk', owners: ['203.0.113.10', '198.51.100.2'] });
    assert.equal(inst.connections[0].initiate, true);
    assert.equal(inst.connections[0].child, 'c1');
    assert.ok(!inst.strongswanConf.includes('top-secret-psk'));
    assert.deepEqual(r.routes.get('qrouter-r1'), ['10.2.0.0/24', '10.3.0.0/24', '10.9.0.0/24'].map((destination) => ({ destination, type: 'unreachable', metric: 4000 })));
    assert.deepEqual(r.routes.get('qrouter-r2'), [{ destination: '10.2.0.0/24', type: 'unreachable', metric: 4000 }, { destination: '10.3.0.0/24', type: 'unreachable', metric: 4000 }]);
    assert.match(r.errors.c4, /unsupported encryption/);
    assert.match(r.errors.c6, /no IPv4 gateway/);
    assert.equal(r.errors.c5, undefined);
    // Deterministic whatever the input order.
    assert.deepEqual(planIpsec([conn('c1'), conn('c2')], [{ router_id: R1, namespace: 'n', gatewayIp: '203.0.113.10' }], '/s'),
      planIpsec([conn('c2'), conn('c1')], [{ router_id: R1, namespace: 'n', gatewayIp: '203.0.113.10' }], '/s'));
  });

  it('strongswan.conf: libipsec before netlink, per-instance vici socket and log', () => {
    const conf = strongswanConf('/s/ipsec/r1');
    assert.ok(conf.indexOf('kernel-libipsec') < conf.indexOf('kernel-netlink'));
    assert.match(conf, /socket = unix:\/\/\/s\/ipsec\/r1\/charon.vici/);
    assert.match(conf, /path = \/s\/ipsec\/r1\/charon.log/);
    const load = /^\s*load = (.*)$/m.exec(conf)![1].split(' ');
    assert.ok(!load.includes('stroke') && !load.includes('resolve'));
  });

  it('compileHost: instances in the plan, unreachable routes in the router namespace', () => {
    const ext = 'e0000000-0000-4000-8000-000000000001';
    const net = 'n0000000-0000-4000-8000-000000000001';
    const port = (id: string, network_id: string, ip: string, owner: string) => ({
      id, project_id: 'p', network_id, mac_address: 'fa:16:3e:00:00:01', admin_state_up: true, device_owner: owner, device_id: R1,
      binding_host_id: 'host1', fixed_ips: [{ subnet_id: `s-${network_id}`, ip_address: ip }], port_security_enabled: false,
      allowed_address_pairs: [], security_groups: [], extra_dhcp_opts: [],
    });
    const model: LogicalModel = {
      networks: [
        { id: ext, project_id: 'p', admin_state_up: true, mtu: 1500, network_type: 'flat', physical_network: 'public', segmentation_id: null, router_external: true },
        { id: net, project_id: 'p', admin_state_up: true, mtu: 1450, network_type: 'vxlan', physical_network: null, segmentation_id: 5, router_external: false },
      ],
      subnets: [
        { id: `s-${ext}`, network_id: ext, ip_version: 4, cidr: '203.0.113.0/24', gateway_ip: '203.0.113.1', enable_dhcp: false, dns_nameservers: [], host_routes: [] },
        { id: `s-${net}`, network_id: net, ip_version: 4, cidr: '10.1.0.0/24', gateway_ip: '10.1.0.1', enable_dhcp: false, dns_nameservers: [], host_routes: [] },
      ],
      ports: [
        port('p0000000-0000-4000-8000-00000000000g', ext, '203.0.113.10', 'network:router_gateway'),
        port('p0000000-0000-4000-8000-00000000000i', net, '10.1.0.1', 'network:router_interface'),
      ],
      routers: [{ id: R1, project_id: 'p', admin_state_up: true, enable_snat: true, gw_port_id: 'p0000000-0000-4000-8000-00000000000g', interface_port_ids: ['p0000000-0000-4000-8000-00000000000i'], routes: [] }],
      floatingips: [],
      security: { ports: [], groups: new Map(), remoteGroupMembers: new Map(), addressGroups: new Map() },
      peers: [],
      ipsecConnections: [conn('c1')],
    };
    const config: HostConfig = {
      host: 'host1', bridgeMappings: { public: 'br-ex' }, vlanInterfaces: {}, underlayIp: null, underlayInterface: null,
      networkNode: true, namespacePrefix: 'nt-', stateDir: '/var/lib/nucleon',
    };
    const plan = compileHost(model, config, { taps: [], portIndexes: {}, networkZones: {} });
    assert.equal(plan.ipsec?.length, 1);
    assert.equal(plan.ipsec![0].namespace, `nt-qrouter-${R1}`);
    assert.deepEqual((plan.ipsec![0].connections[0].conn as Record<string, any>).c1.local_addrs, ['203.0.113.10']);
    const ns = plan.namespaces.find((n) => n.name === `nt-qrouter-${R1}`)!;
    assert.deepEqual(ns.routes.filter((r) => r.type === 'unreachable').map((r) => r.destination), ['10.2.0.0/24', '10.3.0.0/24']);
    // No VPN: no ipsec key at all (plans without VPN are unchanged).
    const plain = compileHost({ ...model, ipsecConnections: [] }, config, { taps: [], portIndexes: {}, networkZones: {} });
    assert.equal('ipsec' in plain, false);
  });
});

describe('IPsec status from the SA list', () => {
  const sa = (state: string, children: Record<string, { name: string; state: string }>) => ({ c1: { state, 'child-sas': children } });
  it('ACTIVE only with IKE ESTABLISHED and the child INSTALLED', () => {
    const sum = (ev: any[]) => summariseSas(ev).get('c1');
    assert.equal(connectionStatus(sum([sa('ESTABLISHED', { 'c1-1': { name: 'c1', state: 'INSTALLED' } })]), 'c1'), 'ACTIVE');
    assert.equal(connectionStatus(sum([sa('ESTABLISHED', {})]), 'c1'), 'DOWN');
    assert.equal(connectionStatus(sum([sa('CONNECTING', {})]), 'c1'), 'DOWN');
    assert.equal(connectionStatus(sum([sa('ESTABLISHED', { 'c1-1': { name: 'c1', state: 'REKEYING' } })]), 'c1'), 'DOWN');
    assert.equal(connectionStatus(undefined, 'c1'), 'DOWN');
    // Two IKE_SAs (a rekey in flight): one good one is enough.
    assert.equal(connectionStatus(sum([sa('DELETING', {}), sa('ESTABLISHED', { 'c1-2': { name: 'c1', state: 'INSTALLED' } })]), 'c1'), 'ACTIVE');
  });
  it('load failures are ERROR', () => {
    assert.deepEqual(instanceStatuses([{ id: 'c1', child: 'c1' }, { id: 'c2', child: 'c2' }], [], new Set(['c2'])), { c1: 'DOWN', c2: 'ERROR' });
  });
});

describe('IPsec backend setting', () => {
  it('libipsec puts kernel-libipsec before kernel-netlink; kernel leaves it out (XFRM holds the SAs)', () => {
    const lib = strongswanConf('/x', 'libipsec');
    assert.match(lib, /load = .* kernel-libipsec kernel-netlink /);
    const kern = strongswanConf('/x', 'kernel');
    const loadLine = kern.split('\n').find((l) => l.trim().startsWith('load ='))!;
    assert.doesNotMatch(loadLine, /kernel-libipsec/);
    assert.match(kern, /load = .* kernel-netlink socket-default vici/);
    assert.equal(strongswanConf('/x'), lib, 'libipsec is the default');
  });
});

describe('negotiation failures in words', () => {
  it('finds the newest known reason in a charon log tail', () => {
    assert.equal(negotiationFailure('09:00:01 12[IKE] received AUTHENTICATION_FAILED notify error\n'), 'authentication failed (pre-shared keys differ?)');
    assert.equal(negotiationFailure('x received NO_PROPOSAL_CHOSEN notify error\ny\n'), 'no proposal chosen (policies differ)');
    assert.equal(negotiationFailure('giving up after 2 retransmits\nlater: received AUTHENTICATION_FAILED notify error'), 'authentication failed (pre-shared keys differ?)');
    assert.equal(negotiationFailure('IKE_SA established\n'), null);
  });
});
