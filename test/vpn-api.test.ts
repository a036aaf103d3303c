// VPNaaS (neutron-vpnaas's API): the status machine, the validation rules and
// the secret box as pure code; then every rule through the services on SQLite
// and PostgreSQL, with Neutron's error types and messages; then the wire
// shape of each resource over HTTP.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { forEachBackend } from './support/backends.ts';
import { caller } from './support/callers.ts';
import { rejectsNeutron, throwsNeutron } from './support/assertions.ts';
import { startTestCloud, type Json, type TestCloud } from './support/server.ts';
import { createServices, type Services } from '../src/services/index.ts';
import { emptyQuery } from '../src/services/resource-store.ts';
import { latestSeq, readChanges } from '../src/services/change-feed.ts';
import { SecretBox, loadOrCreateKey } from '../src/services/secret-box.ts';
import { InvalidVpnTransition, nextStatus, serviceStatus, VPN_STATUSES, type VpnStatus } from '../src/services/vpn/status.ts';
import {
  checkConnectionShape, checkDpd, checkEndpoints, checkMtu, checkNoOverlap, groupIpVersion, mergeDpd, mergeLifetime, peerCidrsIpVersion,
} from '../src/services/vpn/rules.ts';
import { reportIpsecStatus } from '../src/services/vpn/index.ts';
import { loadIpsecConnections } from '../src/agent/load-vpn.ts';
import type { Store } from '../src/store/database.ts';

const alice = caller('aaaa1111aaaa1111aaaa1111aaaa1111');
const bob = caller('bbbb2222bbbb2222bbbb2222bbbb2222');
const admin = caller('adad0000adad0000adad0000adad0000', 'admin');
const MISSING = '0b6b5d1c-9e5f-4f4e-9a4a-000000000000';

/** Exact messages matter here: a string is matched whole. */
const rejects = (p: Promise<unknown>, status: number, type: string, message?: string) =>
  rejectsNeutron(p, status, type, message === undefined ? undefined : new RegExp(`^${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
const throws = (fn: () => unknown, status: number, type: string, message: string) =>
  throwsNeutron(fn, status, type, new RegExp(`^${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));

const IKE_KEYS = ['id', 'tenant_id', 'name', 'description', 'auth_algorithm', 'encryption_algorithm', 'phase1_negotiation_mode', 'lifetime', 'ike_version', 'pfs', 'project_id'];
const IPSEC_KEYS = ['id', 'tenant_id', 'name', 'description', 'transform_protocol', 'auth_algorithm', 'encryption_algorithm', 'encapsulation_mode', 'lifetime', 'pfs', 'project_id'];
const SERVICE_KEYS = ['id', 'tenant_id', 'name', 'description', 'subnet_id', 'router_id', 'flavor_id', 'admin_state_up', 'external_v4_ip', 'external_v6_ip', 'status', 'project_id'];
const GROUP_KEYS = ['id', 'tenant_id', 'name', 'description', 'type', 'endpoints', 'project_id'];
const CONN_KEYS = [
  'id', 'tenant_id', 'name', 'description', 'peer_address', 'peer_id', 'local_id', 'route_mode', 'mtu', 'auth_mode', 'psk', 'initiator',
  'dpd', 'admin_state_up', 'status', 'vpnservice_id', 'ikepolicy_id', 'ipsecpolicy_id', 'peer_cidrs', 'local_ep_group_id', 'peer_ep_group_id', 'project_id',
];

describe('VPN status machine (pure)', () => {
  it('settles every pending state on a report and re-queues settled ones on update', () => {
    for (const s of ['ACTIVE', 'DOWN', 'ERROR'] as const) {
      assert.equal(nextStatus('PENDING_CREATE', { kind: 'report', status: s }), s);
      assert.equal(nextStatus('PENDING_UPDATE', { kind: 'report', status: s }), s);
      assert.equal(nextStatus(s, { kind: 'update' }), 'PENDING_UPDATE');
      assert.equal(nextStatus(s, { kind: 'delete' }), 'PENDING_DELETE');
      assert.equal(nextStatus('ACTIVE', { kind: 'report', status: s }), s);
    }
    assert.equal(nextStatus('PENDING_CREATE', { kind: 'update' }), 'PENDING_CREATE', 'not realized yet: still a creation');
    assert.equal(nextStatus('PENDING_UPDATE', { kind: 'update' }), 'PENDING_UPDATE');
  });

  it('keeps PENDING_DELETE until removed, except for a failure, and refuses updates there', () => {
    assert.equal(nextStatus('PENDING_DELETE', { kind: 'report', status: 'ACTIVE' }), 'PENDING_DELETE');
    assert.equal(nextStatus('PENDING_DELETE', { kind: 'report', status: 'ERROR' }), 'ERROR');
    assert.throws(() => nextStatus('PENDING_DELETE', { kind: 'update' }), InvalidVpnTransition);
    assert.throws(() => nextStatus('PENDING_DELETE', { kind: 'delete' }), InvalidVpnTransition);
  });

  it('has a way out of every state', () => {
    for (const s of VPN_STATUSES) {
      const outs = new Set<VpnStatus>();
      for (const e of [{ kind: 'update' }, { kind: 'delete' }, ...(['ACTIVE', 'DOWN', 'ERROR'] as const).map((st) => ({ kind: 'report', status: st }))] as const) {
        try { outs.add(nextStatus(s, e as never)); } catch { /* refused */ }
      }
      outs.delete(s);
      assert.ok(outs.size > 0, `${s} can be left`);
    }
  });

  it('makes a service ACTIVE when one connection is, DOWN otherwise', () => {
    assert.equal(serviceStatus(['DOWN', 'ACTIVE']), 'ACTIVE');
    assert.equal(serviceStatus(['DOWN', 'ERROR', 'PENDING_CREATE']), 'DOWN');
    assert.equal(serviceStatus([]), 'DOWN');
  });
});

describe('VPN rules (pure)', () => {
  const shape = (peer_cidrs: string[], local: string | null, peer: string | null) => ({ peer_cidrs, local_ep_group_id: local, peer_ep_group_id: peer });
  it('checks the legacy and endpoint-group forms as vpn_validator words it', () => {
    throws(() => checkConnectionShape(shape([], null, null), true), 400, 'MissingPeerCidrs', 'Missing peer CIDRs for IPsec site-to-site connection');
    throws(() => checkConnectionShape(shape(['10.9.0.0/24'], 'L', 'P'), true), 400, 'InvalidEndpointGroup',
      'Endpoint groups local and peer cannot be specified, when VPN Service has subnet specified');
    throws(() => checkConnectionShape(shape(['10.9.0.0/24'], null, 'P'), true), 400, 'InvalidEndpointGroup',
      'Endpoint group peer cannot be specified, when VPN Service has subnet specified');
    throws(() => checkConnectionShape(shape(['10.9.0.0/24'], 'L', 'P'), false), 400, 'PeerCidrsInvalid', 'Peer CIDRs cannot be specified, when using endpoint groups');
    throws(() => checkConnectionShape(shape([], null, null), false), 400, 'MissingRequiredEndpointGroup',
      'Missing endpoint groups local and peer for IPSec site-to-site connection');
    throws(() => checkConnectionShape(shape([], 'L', null), false), 400, 'MissingRequiredEndpointGroup',
      'Missing endpoint group peer for IPSec site-to-site connection');
    checkConnectionShape(shape(['10.9.0.0/24'], null, null), true);
    checkConnectionShape(shape([], 'L', 'P'), false);
  });

  it('checks DPD, MTU, IP versions, overlaps and endpoints', () => {
    throws(() => checkDpd(mergeDpd({ timeout: 30 })), 400, 'IPsecSiteConnectionDpdIntervalValueError', 'ipsec_site_connection dpd_timeout is equal to or less than dpd_interval');
    checkDpd(mergeDpd({}));
    assert.deepEqual(mergeDpd({ action: 'clear' }, { action: 'hold', interval: 10, timeout: 50 }), { action: 'clear', interval: 10, timeout: 50 });
    assert.deepEqual(mergeLifetime({ value: 7200 }), { units: 'seconds', value: 7200 });
    throws(() => checkMtu(1279, 6), 400, 'IPsecSiteConnectionMtuError', 'ipsec_site_connection MTU 1279 is too small for ipv6');
    checkMtu(68, 4);
    throws(() => peerCidrsIpVersion(['10.0.0.0/24', 'fd00::/64']), 400, 'MixedIPVersionsForPeerCidrs', 'Peer CIDRs do not have the same IP version, as required for IPSec site-to-site connection');
    throws(() => groupIpVersion('G', ['10.0.0.0/24', 'fd00::/64']), 400, 'MixedIPVersionsForIPSecEndpoints', 'Endpoints in group G do not have the same IP version, as required for IPSec site-to-site connection');
    throws(() => checkNoOverlap(['10.1.0.0/24'], ['10.0.0.0/8']), 400, 'PeerCidrOverlapsLocalSubnet', 'Peer CIDR 10.0.0.0/8 overlaps with local subnet 10.1.0.0/24');
    checkNoOverlap(['10.1.0.0/24'], ['10.2.0.0/24', 'fd00::/64']);
    throws(() => checkEndpoints('g', 'cidr', []), 400, 'MissingEndpointForEndpointGroup', "No endpoints specified for endpoint group 'g'");
    throws(() => checkEndpoints('g', 'cidr', ['10.0.0.0/33']), 400, 'InvalidEndpointInEndpointGroup', "Endpoint '10.0.0.0/33' is invalid for group type 'cidr': Invalid CIDR");
    throws(() => checkEndpoints('g', 'vlan', ['4095']), 400, 'InvalidEndpointInEndpointGroup', "Endpoint '4095' is invalid for group type 'vlan': Invalid VLAN ID");
    throws(() => checkEndpoints('g', 'network', ['net']), 400, 'InvalidEndpointInEndpointGroup', "Endpoint 'net' is invalid for group type 'network': Invalid UUID");
    assert.deepEqual(checkEndpoints('g', 'subnet', [MISSING.toUpperCase()]), [MISSING]);
  });
});

describe('secret box', () => {
  it('seals with AES-256-GCM: round trip, fresh IV each time, tampering and another key refused', () => {
    const box = SecretBox.ephemeral();
    const a = box.encrypt('secret');
    assert.match(a, /^v1:/);
    assert.notEqual(a, box.encrypt('secret'));
    assert.equal(box.decrypt(a), 'secret');
    assert.ok(!a.includes('secret'));
    const raw = Buffer.from(a.slice(3), 'base64');
    raw[raw.length - 1] ^= 1;
    assert.throws(() => box.decrypt(`v1:${raw.toString('base64')}`));
    assert.throws(() => SecretBox.ephemeral().decrypt(a));
  });

  it('keeps its key in DATA_DIR/secret.key, 32 bytes, mode 0600, made once', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nucleon-key-'));
    try {
      const k1 = loadOrCreateKey(dir);
      const file = path.join(dir, 'secret.key');
      assert.equal(k1.length, 32);
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
      assert.deepEqual(loadOrCreateKey(dir), k1);
      assert.equal(new SecretBox(loadOrCreateKey(dir)).decrypt(new SecretBox(k1).encrypt('x')), 'x');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

forEachBackend((backend) => {
  describe(`VPNaaS on ${backend.name}`, () => {
    let s: Services;
    let store: Store;
    let box: SecretBox;
    let router: string;
    let bareRouter: string;
    let subnetA: string;
    let subnetB: string;
    let subnetV6: string;
    let subnetOff: string;
    let gwIp: string;
    let ike: Json;
    let ipsec: Json;
    let service: Json;
    let legacy: Json;
    let epLocal: Json;
    let epPeer: Json;
    let conn: Json;

    before(async () => {
      store = await backend.openStore();
      box = SecretBox.ephemeral();
      s = createServices(store, { segments: (await import('../src/services/segments.ts')).DEFAULT_SEGMENT_CONFIG, secretBox: box });
      const pub = await s.networks.create(admin, { name: 'public', 'router:external': true });
      await s.subnets.create(admin, { network_id: pub.id, ip_version: 4, cidr: '172.24.4.0/24', enable_dhcp: false });
      const net = await s.networks.create(alice, { name: 'private' });
      subnetA = (await s.subnets.create(alice, { network_id: net.id, ip_version: 4, cidr: '10.1.0.0/24' })).id as string;
      const net2 = await s.networks.create(alice, { name: 'private2' });
      subnetB = (await s.subnets.create(alice, { network_id: net2.id, ip_version: 4, cidr: '10.1.1.0/24' })).id as string;
      subnetV6 = (await s.subnets.create(alice, { network_id: net2.id, ip_version: 6, cidr: 'fd00:1::/64' })).id as string;
      const net3 = await s.networks.create(alice, { name: 'elsewhere' });
      subnetOff = (await s.subnets.create(alice, { network_id: net3.id, ip_version: 4, cidr: '10.1.9.0/24' })).id as string;
      const r = await s.routers.create(alice, { name: 'router1', external_gateway_info: { network_id: pub.id } });
      router = r.id as string;
      gwIp = (r.external_gateway_info as Json).external_fixed_ips[0].ip_address;
      await s.routers.addInterface(alice, router, { subnet_id: subnetA });
      await s.routers.addInterface(alice, router, { subnet_id: subnetB });
      await s.routers.addInterface(alice, router, { subnet_id: subnetV6 });
      bareRouter = (await s.routers.create(alice, { name: 'no-gateway' })).id as string;
    });

    it('creates IKE policies with neutron-vpnaas defaults, and validates their values', async () => {
      ike = await s.vpn.ikePolicies.create(alice, { name: 'ikepolicy' });
      assert.deepEqual(Object.keys(ike), IKE_KEYS);
      assert.deepEqual({ ...ike, id: undefined }, {
        id: undefined, tenant_id: alice.projectId, name: 'ikepolicy', description: '', auth_algorithm: 'sha1', encryption_algorithm: 'aes-128',
        phase1_negotiation_mode: 'main', lifetime: { units: 'seconds', value: 3600 }, ike_version: 'v1', pfs: 'group5', project_id: alice.projectId,
      });
      const custom = await s.vpn.ikePolicies.create(alice, {
        auth_algorithm: 'sha256', encryption_algorithm: 'aes-256-gcm-16', ike_version: 'v2', pfs: 'group31', lifetime: { value: 7200 },
      });
      assert.deepEqual(custom.lifetime, { units: 'seconds', value: 7200 });
      // The list's rendering is the shared oneOf converter's (attributes.ts), so only the start is pinned here.
      await rejectsNeutron(s.vpn.ikePolicies.create(alice, { auth_algorithm: 'md5' }), 400, 'HTTPBadRequest',
        /^Invalid input for auth_algorithm\. Reason: 'md5' is not in \['sha1', ?'sha256'/);
      await rejects(s.vpn.ikePolicies.create(alice, { lifetime: { value: 59 } }), 400, 'HTTPBadRequest',
        "Invalid input for lifetime. Reason: '59' is too small - must be at least '60'.");
      await rejects(s.vpn.ikePolicies.create(alice, { lifetime: { units: 'kilobytes' } }), 400, 'HTTPBadRequest');
      await rejects(s.vpn.ikePolicies.create(alice, { lifetime: { value: 100, when: 1 } }), 400, 'HTTPBadRequest',
        'Invalid input for lifetime. Reason: Unexpected keys supplied: when.');
      await rejects(s.vpn.ikePolicies.create(alice, { pfs: 'group1' }), 400, 'HTTPBadRequest');
      const updated = await s.vpn.ikePolicies.update(alice, custom.id as string, { lifetime: { value: 600 }, name: 'x' });
      assert.deepEqual(updated.lifetime, { units: 'seconds', value: 600 });
      await rejects(s.vpn.ikePolicies.get(bob, ike.id), 404, 'IKEPolicyNotFound', `IKEPolicy ${ike.id} could not be found`);
      assert.equal((await s.vpn.ikePolicies.list(bob, emptyQuery())).items.length, 0);
      assert.equal((await s.vpn.ikePolicies.get(admin, ike.id)).id, ike.id);
    });

    it('creates IPsec policies with neutron-vpnaas defaults', async () => {
      ipsec = await s.vpn.ipsecPolicies.create(alice, { name: 'ipsecpolicy' });
      assert.deepEqual(Object.keys(ipsec), IPSEC_KEYS);
      assert.equal(ipsec.transform_protocol, 'esp');
      assert.equal(ipsec.encapsulation_mode, 'tunnel');
      assert.equal(ipsec.auth_algorithm, 'sha1');
      assert.equal(ipsec.encryption_algorithm, 'aes-128');
      assert.equal(ipsec.pfs, 'group5');
      assert.deepEqual(ipsec.lifetime, { units: 'seconds', value: 3600 });
      await rejects(s.vpn.ipsecPolicies.create(alice, { transform_protocol: 'gre' }), 400, 'HTTPBadRequest');
      await rejects(s.vpn.ipsecPolicies.get(alice, MISSING), 404, 'IPsecPolicyNotFound', `IPsecPolicy ${MISSING} could not be found`);
    });

    it('creates VPN services only on a visible router with a gateway (and the legacy subnet on it)', async () => {
      await rejects(s.vpn.vpnServices.create(alice, { router_id: MISSING }), 404, 'RouterNotFound', `Router ${MISSING} could not be found`);
      await rejects(s.vpn.vpnServices.create(bob, { router_id: router }), 404, 'RouterNotFound');
      await rejects(s.vpn.vpnServices.create(alice, { router_id: bareRouter }), 400, 'RouterIsNotExternal', `Router ${bareRouter} has no external network gateway set`);
      await rejects(s.vpn.vpnServices.create(alice, { router_id: router, subnet_id: subnetOff }), 400, 'SubnetIsNotConnectedToRouter',
        `Subnet ${subnetOff} is not connected to Router ${router}`);
      await rejects(s.vpn.vpnServices.create(alice, { router_id: router, subnet_id: MISSING }), 404, 'SubnetNotFound');
      await rejects(s.vpn.vpnServices.create(alice, { router_id: router, flavor_id: MISSING }), 404, 'FlavorNotFound');
      await rejects(s.vpn.vpnServices.create(alice, {}), 400, 'HTTPBadRequest', "Failed to parse request. Required attribute 'router_id' not specified");
      service = await s.vpn.vpnServices.create(alice, { name: 'vpn', router_id: router });
      assert.deepEqual(Object.keys(service), SERVICE_KEYS);
      assert.equal(service.status, 'PENDING_CREATE');
      assert.equal(service.subnet_id, null);
      assert.equal(service.flavor_id, null);
      assert.equal(service.admin_state_up, true);
      assert.equal(service.external_v4_ip, gwIp);
      assert.equal(service.external_v6_ip, null);
      legacy = await s.vpn.vpnServices.create(alice, { name: 'legacy', router_id: router, subnet_id: subnetA });
      assert.equal(legacy.subnet_id, subnetA);
      const renamed = await s.vpn.vpnServices.update(alice, legacy.id, { name: 'legacy2' });
      assert.equal(renamed.status, 'PENDING_CREATE');
      await rejects(s.vpn.vpnServices.update(alice, legacy.id, { router_id: router }), 400, 'HTTPBadRequest', 'Cannot update read-only attribute router_id');
      await rejects(s.vpn.vpnServices.get(bob, service.id), 404, 'VPNServiceNotFound', `VPNService ${service.id} could not be found`);
    });

    it('creates endpoint groups validated per type, fixed once created', async () => {
      await rejects(s.vpn.endpointGroups.create(alice, { name: 'e', type: 'cidr', endpoints: [] }), 400, 'MissingEndpointForEndpointGroup');
      await rejects(s.vpn.endpointGroups.create(alice, { type: 'cidr', endpoints: ['10.2.0.0/40'] }), 400, 'InvalidEndpointInEndpointGroup',
        "Endpoint '10.2.0.0/40' is invalid for group type 'cidr': Invalid CIDR");
      await rejects(s.vpn.endpointGroups.create(alice, { type: 'subnet', endpoints: [MISSING] }), 400, 'NonExistingSubnetInEndpointGroup',
        `Subnet ${MISSING} in endpoint group does not exist`);
      await rejects(s.vpn.endpointGroups.create(bob, { type: 'subnet', endpoints: [subnetA] }), 400, 'NonExistingSubnetInEndpointGroup');
      await rejects(s.vpn.endpointGroups.create(alice, { type: 'zone', endpoints: ['x'] }), 400, 'HTTPBadRequest');
      await rejects(s.vpn.endpointGroups.create(alice, { type: 'cidr', endpoints: ['10.2.0.0/24', '10.2.0.0/24'] }), 400, 'HTTPBadRequest');
      epLocal = await s.vpn.endpointGroups.create(alice, { name: 'ep_subnet', type: 'subnet', endpoints: [subnetA, subnetB] });
      assert.deepEqual(Object.keys(epLocal), GROUP_KEYS);
      assert.deepEqual(epLocal.endpoints, [subnetA, subnetB]);
      epPeer = await s.vpn.endpointGroups.create(alice, { name: 'ep_cidr', type: 'cidr', endpoints: ['10.2.0.0/24'] });
      await rejects(s.vpn.endpointGroups.update(alice, epPeer.id, { endpoints: ['10.3.0.0/24'] }), 400, 'HTTPBadRequest', 'Cannot update read-only attribute endpoints');
      await rejects(s.vpn.endpointGroups.update(alice, epPeer.id, { type: 'subnet' }), 400, 'HTTPBadRequest', 'Cannot update read-only attribute type');
      assert.equal((await s.vpn.endpointGroups.update(alice, epPeer.id, { description: 'peer site' })).description, 'peer site');
      await rejects(s.vpn.endpointGroups.get(alice, MISSING), 404, 'VPNEndpointGroupNotFound', `Endpoint group ${MISSING} could not be found`);
    });

    const base = () => ({ vpnservice_id: service.id, ikepolicy_id: ike.id, ipsecpolicy_id: ipsec.id, peer_address: '172.24.4.233', peer_id: '172.24.4.233', psk: 'secret' });

    it('validates connections as neutron-vpnaas does', async () => {
      const c = s.vpn.connections;
      await rejects(c.create(alice, { ...base(), vpnservice_id: MISSING, local_ep_group_id: epLocal.id, peer_ep_group_id: epPeer.id }), 404, 'VPNServiceNotFound');
      await rejects(c.create(alice, { ...base(), ikepolicy_id: MISSING, local_ep_group_id: epLocal.id, peer_ep_group_id: epPeer.id }), 404, 'IKEPolicyNotFound');
      await rejects(c.create(alice, { ...base(), ipsecpolicy_id: MISSING, local_ep_group_id: epLocal.id, peer_ep_group_id: epPeer.id }), 404, 'IPsecPolicyNotFound');
      await rejects(c.create(bob, { ...base(), local_ep_group_id: epLocal.id, peer_ep_group_id: epPeer.id }), 404, 'VPNServiceNotFound');
      await rejects(c.create(alice, { ...base() }), 400, 'MissingRequiredEndpointGroup');
      await rejects(c.create(alice, { ...base(), peer_cidrs: ['10.2.0.0/24'], local_ep_group_id: epLocal.id, peer_ep_group_id: epPeer.id }), 400, 'PeerCidrsInvalid');
      await rejects(c.create(alice, { ...base(), vpnservice_id: legacy.id }), 400, 'MissingPeerCidrs');
      await rejects(c.create(alice, { ...base(), vpnservice_id: legacy.id, peer_cidrs: ['10.2.0.0/24'], local_ep_group_id: epLocal.id }), 400, 'InvalidEndpointGroup');
      await rejects(c.create(alice, { ...base(), local_ep_group_id: epPeer.id, peer_ep_group_id: epPeer.id }), 400, 'WrongEndpointGroupType',
        `Endpoint group ${epPeer.id} type is 'cidr' and should be 'subnet'`);
      await rejects(c.create(alice, { ...base(), local_ep_group_id: epLocal.id, peer_ep_group_id: epLocal.id }), 400, 'WrongEndpointGroupType',
        `Endpoint group ${epLocal.id} type is 'subnet' and should be 'cidr'`);
      const offGroup = await s.vpn.endpointGroups.create(alice, { type: 'subnet', endpoints: [subnetOff] });
      await rejects(c.create(alice, { ...base(), local_ep_group_id: offGroup.id, peer_ep_group_id: epPeer.id }), 400, 'SubnetIsNotConnectedToRouter');
      const mixed = await s.vpn.endpointGroups.create(alice, { type: 'subnet', endpoints: [subnetA, subnetV6] });
      await rejects(c.create(alice, { ...base(), local_ep_group_id: mixed.id, peer_ep_group_id: epPeer.id }), 400, 'MixedIPVersionsForIPSecEndpoints');
      const v6Peer = await s.vpn.endpointGroups.create(alice, { type: 'cidr', endpoints: ['fd00:2::/64'] });
      await rejects(c.create(alice, { ...base(), local_ep_group_id: epLocal.id, peer_ep_group_id: v6Peer.id }), 400, 'MixedIPVersionsForIPSecConnection',
        'IP versions are not compatible between peer and local endpoints');
      await rejects(c.create(alice, { ...base(), vpnservice_id: legacy.id, peer_cidrs: ['10.2.0.0/24', 'fd00:2::/64'] }), 400, 'MixedIPVersionsForPeerCidrs');
      await rejects(c.create(alice, { ...base(), vpnservice_id: legacy.id, peer_cidrs: ['10.0.0.0/8'] }), 400, 'PeerCidrOverlapsLocalSubnet');
      await rejects(c.create(alice, { ...base(), vpnservice_id: legacy.id, peer_cidrs: ['10.2.0.300/24'] }), 400, 'HTTPBadRequest');
      await rejects(c.create(alice, { ...base(), local_ep_group_id: epLocal.id, peer_ep_group_id: epPeer.id, dpd: { interval: 120, timeout: 120 } }), 400,
        'IPsecSiteConnectionDpdIntervalValueError', 'ipsec_site_connection dpd_timeout is equal to or less than dpd_interval');
      await rejects(c.create(alice, { ...base(), local_ep_group_id: epLocal.id, peer_ep_group_id: epPeer.id, dpd: { action: 'explode' } }), 400, 'HTTPBadRequest');
      await rejects(c.create(alice, { ...base(), local_ep_group_id: epLocal.id, peer_ep_group_id: epPeer.id, mtu: 67 }), 400, 'IPsecSiteConnectionMtuError',
        'ipsec_site_connection MTU 67 is too small for ipv4');
      await rejects(c.create(alice, { ...base(), local_ep_group_id: epLocal.id, peer_ep_group_id: epPeer.id, mtu: -1 }), 400, 'HTTPBadRequest',
        "Invalid input for mtu. Reason: '-1' is too small - must be at least '0'.");
      const v6Local = await s.vpn.endpointGroups.create(alice, { type: 'subnet', endpoints: [subnetV6] });
      await rejects(c.create(alice, { ...base(), local_ep_group_id: v6Local.id, peer_ep_group_id: v6Peer.id, mtu: 1000 }), 400,
        'IPsecSiteConnectionMtuError', 'ipsec_site_connection MTU 1000 is too small for ipv6');
      await rejects(c.create(alice, { ...base(), local_ep_group_id: v6Local.id, peer_ep_group_id: v6Peer.id, peer_address: 'fd00:9::1' }), 400,
        'ExternalNetworkHasNoSubnet', `Router's ${router} external network has no IPv6 subnet`);
      await rejects(c.create(alice, { ...base(), local_ep_group_id: epLocal.id, peer_ep_group_id: epPeer.id, initiator: 'sometimes' }), 400, 'HTTPBadRequest');
      await rejects(c.create(alice, { ...base(), local_ep_group_id: epLocal.id, peer_ep_group_id: epPeer.id, route_mode: 'static' }), 400, 'HTTPBadRequest',
        "Attribute 'route_mode' not allowed in POST");
      await rejects(c.create(alice, { ...base(), psk: undefined, local_ep_group_id: epLocal.id, peer_ep_group_id: epPeer.id }), 400, 'HTTPBadRequest');
      for (const g of [offGroup, mixed, v6Peer, v6Local]) await s.vpn.endpointGroups.delete(alice, g.id as string);
    });

    it('creates a connection with endpoint groups; the PSK is sealed in the database and shown to its project and admins only', async () => {
      const seq = await latestSeq(store.db);
      conn = await s.vpn.connections.create(alice, { ...base(), name: 'conn', local_ep_group_id: epLocal.id, peer_ep_group_id: epPeer.id });
      assert.deepEqual(Object.keys(conn), CONN_KEYS);
      assert.deepEqual({ ...conn, id: undefined }, {
        id: undefined, tenant_id: alice.projectId, name: 'conn', description: '', peer_address: '172.24.4.233', peer_id: '172.24.4.233', local_id: '',
        route_mode: 'static', mtu: 1500, auth_mode: 'psk', psk: 'secret', initiator: 'bi-directional', dpd: { action: 'hold', interval: 30, timeout: 120 },
        admin_state_up: true, status: 'PENDING_CREATE', vpnservice_id: service.id, ikepolicy_id: ike.id, ipsecpolicy_id: ipsec.id, peer_cidrs: [],
        local_ep_group_id: epLocal.id, peer_ep_group_id: epPeer.id, project_id: alice.projectId,
      });
      const raw = await store.db.selectFrom('vpn_ipsec_site_connections').select('psk').where('id', '=', conn.id).executeTakeFirstOrThrow();
      assert.notEqual(raw.psk, 'secret');
      assert.ok(!raw.psk.includes('secret'));
      assert.equal(box.decrypt(raw.psk), 'secret');
      assert.equal((await s.vpn.connections.get(admin, conn.id)).psk, 'secret');
      await rejects(s.vpn.connections.get(bob, conn.id), 404, 'IPsecSiteConnectionNotFound', `ipsec_site_connection ${conn.id} not found`);
      await rejects(s.vpn.connections.update(bob, conn.id, { psk: 'x' }), 404, 'IPsecSiteConnectionNotFound');
      const changes = await readChanges(store.db, seq);
      assert.deepEqual(changes.map((c) => [c.resource_type, c.op]), [['ipsec_site_connection', 'create']]);
      const legacyConn = await s.vpn.connections.create(alice, { ...base(), vpnservice_id: legacy.id, peer_cidrs: ['10.2.0.0/24'], dpd: { action: 'restart', timeout: 60 } });
      assert.deepEqual(legacyConn.peer_cidrs, ['10.2.0.0/24']);
      assert.deepEqual(legacyConn.dpd, { action: 'restart', interval: 30, timeout: 60 });
      const filtered = await s.vpn.connections.list(alice, { ...emptyQuery(), filters: { vpnservice_id: [legacy.id] } });
      assert.deepEqual(filtered.items.map((i) => i.id), [legacyConn.id]);
      await s.vpn.connections.delete(alice, legacyConn.id as string);
    });

    it('refuses to delete or change what connections use', async () => {
      await rejects(s.vpn.ikePolicies.delete(alice, ike.id), 409, 'IKEPolicyInUse',
        `IKEPolicy ${ike.id} is in use by existing IPsecSiteConnection and can't be updated or deleted`);
      await rejects(s.vpn.ikePolicies.update(alice, ike.id, { pfs: 'group14' }), 409, 'IKEPolicyInUse');
      await rejects(s.vpn.ipsecPolicies.delete(alice, ipsec.id), 409, 'IPsecPolicyInUse',
        `IPsecPolicy ${ipsec.id} is in use by existing IPsecSiteConnection and can't be updated or deleted`);
      await rejects(s.vpn.vpnServices.delete(alice, service.id), 409, 'VPNServiceInUse', `VPNService ${service.id} is still in use`);
      await rejects(s.vpn.endpointGroups.delete(alice, epLocal.id), 400, 'EndpointGroupInUse', `Endpoint group ${epLocal.id} is in use and cannot be deleted`);
      await rejects(s.vpn.endpointGroups.delete(alice, epPeer.id), 400, 'EndpointGroupInUse');
      // The router and subnets a VPN service needs stay (neutron-vpnaas's L3 checks).
      await rejects(s.routers.update(alice, router, { external_gateway_info: null }), 409, 'RouterInUseByVPNService');
      await rejects(s.routers.delete(alice, router), 409, 'RouterInUse');
      const localSubnet = (epLocal.endpoints as string[])[0];
      // (Both the legacy service, by its subnet_id, and the endpoint-group one use it.)
      await rejects(s.routers.removeInterface(alice, router, { subnet_id: localSubnet }), 409, 'SubnetInUseByVPNService');
      const spare = await s.vpn.ikePolicies.create(alice, { name: 'spare' });
      await s.vpn.ikePolicies.delete(alice, spare.id as string);
      await rejects(s.vpn.ikePolicies.get(alice, spare.id as string), 404, 'IKEPolicyNotFound');
    });

    it('takes agent reports: connection and service statuses, revisions and feed rows only on change', async () => {
      const before = await store.db.selectFrom('vpn_ipsec_site_connections').select('revision_number').where('id', '=', conn.id).executeTakeFirstOrThrow();
      const seq = await latestSeq(store.db);
      const r1 = await reportIpsecStatus(store, { connections: { [conn.id]: 'ACTIVE', [MISSING]: 'ACTIVE' } });
      assert.deepEqual(r1, { connections: [conn.id], vpnservices: [service.id] });
      assert.equal((await s.vpn.connections.get(alice, conn.id)).status, 'ACTIVE');
      assert.equal((await s.vpn.vpnServices.get(alice, service.id)).status, 'ACTIVE');
      const after1 = await store.db.selectFrom('vpn_ipsec_site_connections').select('revision_number').where('id', '=', conn.id).executeTakeFirstOrThrow();
      assert.equal(after1.revision_number, before.revision_number + 1);
      const feed = await readChanges(store.db, seq);
      assert.deepEqual(feed.map((c) => [c.resource_type, c.resource_id, c.op]), [
        ['ipsec_site_connection', conn.id, 'update'], ['vpnservice', service.id, 'update'],
      ]);
      const seq2 = await latestSeq(store.db);
      assert.deepEqual(await reportIpsecStatus(store, { connections: { [conn.id]: 'ACTIVE' } }), { connections: [], vpnservices: [] });
      assert.equal(await latestSeq(store.db), seq2, 'nothing changed, nothing written');
      await reportIpsecStatus(store, { connections: { [conn.id]: 'DOWN' } });
      assert.equal((await s.vpn.vpnServices.get(alice, service.id)).status, 'DOWN');
      await reportIpsecStatus(store, { connections: { [conn.id]: 'ACTIVE' } });
    });

    it('puts a connection back in PENDING_UPDATE when its data plane changes (a new PSK), not for a new name', async () => {
      const renamed = await s.vpn.connections.update(alice, conn.id, { name: 'conn2' });
      assert.equal(renamed.status, 'ACTIVE');
      const oldRaw = (await store.db.selectFrom('vpn_ipsec_site_connections').select('psk').where('id', '=', conn.id).executeTakeFirstOrThrow()).psk;
      const rekeyed = await s.vpn.connections.update(alice, conn.id, { psk: 'new-secret' });
      assert.equal(rekeyed.status, 'PENDING_UPDATE');
      assert.equal(rekeyed.psk, 'new-secret');
      const raw = (await store.db.selectFrom('vpn_ipsec_site_connections').select('psk').where('id', '=', conn.id).executeTakeFirstOrThrow()).psk;
      assert.notEqual(raw, oldRaw);
      assert.ok(!raw.includes('new-secret'));
      await rejects(s.vpn.connections.update(alice, conn.id, { dpd: { interval: 500 } }), 400, 'IPsecSiteConnectionDpdIntervalValueError');
      const dpd = await s.vpn.connections.update(alice, conn.id, { dpd: { interval: 10 } });
      assert.deepEqual(dpd.dpd, { action: 'hold', interval: 10, timeout: 120 });
      await rejects(s.vpn.connections.update(alice, conn.id, { peer_cidrs: ['10.9.0.0/24'] }), 400, 'PeerCidrsInvalid');
      await rejects(s.vpn.connections.update(alice, conn.id, { vpnservice_id: legacy.id }), 400, 'HTTPBadRequest', 'Cannot update read-only attribute vpnservice_id');
      await reportIpsecStatus(store, { connections: { [conn.id]: 'ACTIVE' } });
      assert.equal((await s.vpn.connections.get(alice, conn.id)).status, 'ACTIVE');
      await store.db.updateTable('vpn_ipsec_site_connections').set({ status: 'PENDING_DELETE' }).where('id', '=', conn.id).execute();
      await rejects(s.vpn.connections.update(alice, conn.id, { psk: 'x' }), 400, 'VPNStateInvalidToUpdate',
        `Invalid state PENDING_DELETE of vpnaas resource ${conn.id} for updating`);
      await reportIpsecStatus(store, { connections: { [conn.id]: 'ERROR' } });
      assert.equal((await s.vpn.connections.get(alice, conn.id)).status, 'ERROR');
    });

    it('gives the agent connections with policies resolved, CIDRs and the PSK opened', async () => {
      const model = await loadIpsecConnections(store.db, (sealed) => box.decrypt(sealed));
      assert.equal(model.length, 1);
      assert.deepEqual(model[0], {
        id: conn.id, vpnservice_id: service.id, router_id: router, admin_state_up: true, peer_address: '172.24.4.233', peer_id: '172.24.4.233',
        local_cidrs: ['10.1.0.0/24', '10.1.1.0/24'], peer_cidrs: ['10.2.0.0/24'], psk: 'new-secret', mtu: 1500, initiator: 'bi-directional',
        dpd: { action: 'hold', interval: 10, timeout: 120 },
        ike: { ike_version: 'v1', auth_algorithm: 'sha1', encryption_algorithm: 'aes-128', pfs: 'group5', phase1_negotiation_mode: 'main', lifetime: { units: 'seconds', value: 3600 } },
        ipsec: { transform_protocol: 'esp', encapsulation_mode: 'tunnel', auth_algorithm: 'sha1', encryption_algorithm: 'aes-128', pfs: 'group5', lifetime: { units: 'seconds', value: 3600 } },
      });
      await s.vpn.vpnServices.update(alice, service.id, { admin_state_up: false });
      assert.equal((await loadIpsecConnections(store.db, (x) => box.decrypt(x)))[0].admin_state_up, false);
      await s.vpn.vpnServices.update(alice, service.id, { admin_state_up: true });
    });

    it('counts VPN resources against quotas (unlimited by default)', async () => {
      await store.db.insertInto('quotas').values({ project_id: bob.projectId, resource: 'ikepolicy', hard_limit: 1 }).execute();
      await s.vpn.ikePolicies.create(bob, {});
      await rejects(s.vpn.ikePolicies.create(bob, {}), 409, 'OverQuota', "Quota exceeded for resources: ['ikepolicy'].");
    });

    it('deletes in dependency order, each delete in the change feed', async () => {
      const seq = await latestSeq(store.db);
      await s.vpn.connections.delete(alice, conn.id);
      await s.vpn.endpointGroups.delete(alice, epLocal.id);
      await s.vpn.endpointGroups.delete(alice, epPeer.id);
      await s.vpn.vpnServices.delete(alice, service.id);
      await s.vpn.ikePolicies.delete(alice, ike.id);
      await s.vpn.ipsecPolicies.delete(alice, ipsec.id);
      const feed = await readChanges(store.db, seq);
      assert.deepEqual(feed.map((c) => [c.resource_type, c.op]), [
        ['ipsec_site_connection', 'delete'], ['endpoint_group', 'delete'], ['endpoint_group', 'delete'],
        ['vpnservice', 'delete'], ['ikepolicy', 'delete'], ['ipsecpolicy', 'delete'],
      ]);
      assert.deepEqual(await loadIpsecConnections(store.db, (x) => box.decrypt(x)), []);
    });
  });
});

forEachBackend((backend) => {
  describe(`VPNaaS on the wire (${backend.name})`, () => {
    let cloud: TestCloud;
    after(async () => { await cloud?.close?.(); });

    it('serves each resource under /v2.0/vpn with neutron-vpnaas bodies', async () => {
      cloud = await startTestCloud(backend.name);
      const adminApi = cloud.api(cloud.adminToken);
      const member = cloud.api(await cloud.tokenFor('vpnwire', 'member'));
      const pub = (await adminApi.post('/v2.0/networks', { network: { name: 'public', 'router:external': true } })).body.network;
      await adminApi.post('/v2.0/subnets', { subnet: { network_id: pub.id, ip_version: 4, cidr: '172.24.4.0/24', enable_dhcp: false } });
      const net = (await member.post('/v2.0/networks', { network: { name: 'privateA' } })).body.network;
      const sub = (await member.post('/v2.0/subnets', { subnet: { network_id: net.id, ip_version: 4, cidr: '10.1.0.0/24', name: 'privateA' } })).body.subnet;
      const router = (await member.post('/v2.0/routers', { router: { name: 'router1', external_gateway_info: { network_id: pub.id } } })).body.router;
      assert.equal((await member.put(`/v2.0/routers/${router.id}/add_router_interface`, { subnet_id: sub.id })).status, 200);

      const post = async (p: string, key: string, body: Json, keys: string[]) => {
        const r = await member.post(`/v2.0/vpn/${p}`, { [key]: body });
        assert.equal(r.status, 201, r.text);
        assert.deepEqual(Object.keys(r.body), [key]);
        assert.deepEqual(Object.keys(r.body[key]), keys);
        return r.body[key];
      };
      const ike = await post('ikepolicies', 'ikepolicy', { name: 'ikepolicy' }, IKE_KEYS);
      const ipsec = await post('ipsecpolicies', 'ipsecpolicy', { name: 'ipsecpolicy' }, IPSEC_KEYS);
      const svc = await post('vpnservices', 'vpnservice', { name: 'vpn', router_id: router.id }, SERVICE_KEYS);
      const local = await post('endpoint-groups', 'endpoint_group', { name: 'ep_subnet', type: 'subnet', endpoints: [sub.id] }, GROUP_KEYS);
      const peer = await post('endpoint-groups', 'endpoint_group', { name: 'ep_cidr', type: 'cidr', endpoints: ['10.2.0.0/24'] }, GROUP_KEYS);
      const conn = await post('ipsec-site-connections', 'ipsec_site_connection', {
        name: 'conn', vpnservice_id: svc.id, ikepolicy_id: ike.id, ipsecpolicy_id: ipsec.id, peer_address: '172.24.4.233', peer_id: '172.24.4.233',
        psk: 'secret', local_ep_group_id: local.id, peer_ep_group_id: peer.id,
      }, CONN_KEYS);
      assert.equal(conn.psk, 'secret');
      assert.equal(svc.status, 'PENDING_CREATE');
      const list = await member.get('/v2.0/vpn/ipsec-site-connections?fields=id&fields=status');
      assert.deepEqual(list.body, { ipsec_site_connections: [{ id: conn.id, status: 'PENDING_CREATE' }] });
      const inUse = await member.del(`/v2.0/vpn/ikepolicies/${ike.id}`);
      assert.equal(inUse.status, 409);
      assert.equal(inUse.body.NeutronError.type, 'IKEPolicyInUse');
      const missing = await member.get(`/v2.0/vpn/vpnservices/${MISSING}`);
      assert.equal(missing.status, 404);
      assert.equal(missing.body.NeutronError.type, 'VPNServiceNotFound');
      const raw = await cloud.nucleon.store.db.selectFrom('vpn_ipsec_site_connections').select('psk').executeTakeFirstOrThrow();
      assert.ok(!raw.psk.includes('secret'));
      const ext = (await member.get('/v2.0/extensions')).body.extensions.map((e: Json) => e.alias);
      assert.ok(ext.includes('vpnaas') && ext.includes('vpn-endpoint-groups'));
      const quota = (await adminApi.get(`/v2.0/quotas/${list.body.ipsec_site_connections.length ? conn.project_id : ''}`)).body.quota;
      for (const r of ['vpnservice', 'ipsec_site_connection', 'ikepolicy', 'ipsecpolicy', 'endpoint_group']) assert.equal(quota[r], -1, r);
    });
  });
});
