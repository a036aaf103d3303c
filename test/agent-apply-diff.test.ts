// The pure core of apply (no root, no host): plan + state → steps, the nft
// listing parser and table diff, and which connections a change cuts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { HostPlan, NamespacePlan, NftTable } from '../src/agent/plan.ts';
import { diffHost, describeStep, routeMatches, type Step } from '../src/agent/apply/diff.ts';
import { emptyNamespace, parseFloods, parseLinks, type HostState, type LinkState, type NamespaceState } from '../src/agent/apply/host-state.ts';
import { chainComment, conntrackCuts, countStatements, diffTable, normElement, parseNftListing, renderTable, type NftTableState } from '../src/agent/apply/nft.ts';

const HOST = 'nat-host-unit';
const PREFIX = 'nat-unit-';
const ROUTER_NS = `${PREFIX}qrouter-r1`;
const opts = { hostNamespace: HOST, namespacePrefix: PREFIX, ownNetnsRef: '4242' };

const ns = (name: string, kind: NamespacePlan['kind'], extra: Partial<NamespacePlan> = {}): NamespacePlan =>
  ({ name, kind, bridges: [], vxlans: [], vlans: [], veths: [], plugs: [], addresses: [], routes: [], sysctls: {}, nft: [], ...extra });

function plan(namespaces: NamespacePlan[], extra: Partial<HostPlan> = {}): HostPlan {
  return { host: 'h', namespaces, firewall: [], dhcp: [], bindings: [], routers: [], floatingips: [], portIndexes: {}, networkZones: {}, ...extra };
}

const link = (name: string, kind: string, extra: Partial<LinkState> = {}): LinkState =>
  ({ name, ifindex: 0, kind, master: null, mtu: 1500, address: '02:00:00:00:00:01', up: true, operstate: 'UP', ...extra });

function state(namespaces: NamespaceState[], extra: Partial<HostState> = {}): HostState {
  return { ownedNamespaces: namespaces.map((n) => n.name).filter((n) => n.startsWith(PREFIX)), namespaces: Object.fromEntries(namespaces.map((n) => [n.name, n])), dhcp: {}, ...extra };
}
const present = (name: string, extra: Partial<NamespaceState> = {}): NamespaceState => ({ ...emptyNamespace(name), exists: true, ...extra });
const lines = (steps: Step[]) => steps.map(describeStep);

/** A router with a qr- veth into a bridge in the host namespace. */
function routerPlan(): HostPlan {
  return plan([
    ns('', 'host', { bridges: [{ name: 'brqnet1', mtu: 1450 }], plugs: [{ device: 'tapqr1', bridge: 'brqnet1', mtu: 1450 }] }),
    ns(ROUTER_NS, 'router', {
      veths: [{ name: 'qr-1', mac: 'FA:16:3E:00:00:01', mtu: 1450, peer: { name: 'tapqr1', namespace: '' } }],
      addresses: [{ device: 'qr-1', cidr: '10.0.0.1/24' }],
      routes: [{ destination: 'default', via: '10.0.0.254' }],
      sysctls: { 'net.ipv4.ip_forward': '1' },
    }),
  ]);
}

/** What the host looks like once routerPlan() is applied. */
function routerState(): HostState {
  return state([
    present(HOST, { links: [link('lo', ''), link('brqnet1', 'bridge', { ifindex: 2, mtu: 1450 }), link('tapqr1', 'veth', { ifindex: 3, master: 'brqnet1', mtu: 1450, peer: { ifindex: 7, netnsid: 0 } })] }),
    present(ROUTER_NS, {
      links: [link('lo', ''), link('qr-1', 'veth', { ifindex: 7, mtu: 1450, address: 'fa:16:3e:00:00:01', peer: { ifindex: 3, netnsid: 0 } })],
      addresses: [{ device: 'qr-1', cidr: '10.0.0.1/24', family: 'inet', scope: 'global' }, { device: 'qr-1', cidr: 'fe80::1/64', family: 'inet6', scope: 'link' }],
      routes: [
        { family: 4, dst: '10.0.0.0/24', gateway: null, dev: 'qr-1', type: 'unicast', protocol: 'kernel', metric: 0 },
        { family: 4, dst: 'default', gateway: '10.0.0.254', dev: 'qr-1', type: 'unicast', protocol: 'static', metric: 0 },
      ],
      sysctls: { 'net.ipv4.ip_forward': '1' },
    }),
  ]);
}

describe('apply diff (pure)', () => {
  it('builds a router from nothing, in phase order (forwarding and filtering set before anything is plugged), with the veth peer sent to the host namespace', () => {
    const { steps, notes } = diffHost(routerPlan(), state([present(HOST)]), opts);
    assert.deepEqual(notes, []);
    assert.deepEqual(lines(steps), [
      `${ROUTER_NS}: ip netns add ${ROUTER_NS}`,
      `${HOST}: ip link add brqnet1 mtu 1450 type bridge`,
      `${ROUTER_NS}: ip link add qr-1 mtu 1450 address fa:16:3e:00:00:01 type veth peer name tapqr1 mtu 1450 netns ${HOST}`,
      `${ROUTER_NS}: sysctl -w net.ipv4.ip_forward=1`,
      `${HOST}: ip link set dev brqnet1 up`,
      `${HOST}: ip link set dev tapqr1 master brqnet1 up`,
      `${ROUTER_NS}: ip link set dev lo up`,
      `${ROUTER_NS}: ip link set dev qr-1 up`,
      `${ROUTER_NS}: ip addr add 10.0.0.1/24 dev qr-1`,
      `${ROUTER_NS}: ip route replace 0.0.0.0/0 via 10.0.0.254 proto static`,
    ]);
  });

  it('an applied plan diffs to nothing (link-local and kernel routes are not ours to judge)', () => {
    assert.deepEqual(lines(diffHost(routerPlan(), routerState(), opts).steps), []);
  });

  it('a veth peer going to the agent\'s own namespace is named by a pid', () => {
    const { steps } = diffHost(routerPlan(), state([present('')]), { ...opts, hostNamespace: '' });
    assert.ok(steps.some((s) => s.args.join(' ').endsWith('peer name tapqr1 mtu 1450 netns 4242')));
  });

  it('fixes drift field by field: a lost plug, mtu, mac, a down link, an address and a route', () => {
    const st = routerState();
    const host = st.namespaces[HOST];
    host.links[2] = { ...host.links[2], master: null, mtu: 1500 };
    const r = st.namespaces[ROUTER_NS];
    r.links[1] = { ...r.links[1], up: false, address: '02:00:00:00:00:99' };
    r.addresses = r.addresses.slice(1);
    r.routes = r.routes.slice(0, 1);
    r.sysctls = { 'net.ipv4.ip_forward': '0' };
    assert.deepEqual(lines(diffHost(routerPlan(), st, opts).steps), [
      `${ROUTER_NS}: sysctl -w net.ipv4.ip_forward=1`,
      `${HOST}: ip link set dev tapqr1 master brqnet1 mtu 1450`,
      `${ROUTER_NS}: ip link set dev qr-1 address fa:16:3e:00:00:01 up`,
      `${ROUTER_NS}: ip addr add 10.0.0.1/24 dev qr-1`,
      `${ROUTER_NS}: ip route replace 0.0.0.0/0 via 10.0.0.254 proto static`,
    ]);
  });

  it('recreates a veth whose partner is gone or another device', () => {
    const st = routerState();
    // The router end now pairs with something else (ifindex 9), not tapqr1 (3).
    st.namespaces[ROUTER_NS].links[1].peer = { ifindex: 9, netnsid: 0 };
    st.namespaces[HOST].links = st.namespaces[HOST].links.filter((l) => l.name !== 'tapqr1');
    const s = lines(diffHost(routerPlan(), st, opts).steps);
    assert.equal(s[0], `${ROUTER_NS}: ip link del qr-1`);
    assert.match(s[1], /ip link add qr-1 .* peer name tapqr1/);
  });

  it('does not take a name held by a foreign device (a VM tap): a note, no step', () => {
    const st = routerState();
    st.namespaces[HOST].links[2] = link('tapqr1', 'veth', { ifindex: 3, peer: { ifindex: 2, netnsid: 5 } });
    st.namespaces[ROUTER_NS].links = [link('lo', '')];
    const { steps, notes } = diffHost(routerPlan(), st, opts);
    assert.ok(!steps.some((s) => s.args.includes('veth')));
    assert.match(notes[0], /tapqr1 exists and is not the peer of qr-1/);
  });

  it('a plug of a tap that is not there yet is a note, not a failing step', () => {
    const p = routerPlan();
    p.namespaces[0].plugs.push({ device: 'tapvm1', bridge: 'brqnet1', mtu: 1450 });
    const { steps, notes } = diffHost(p, routerState(), opts);
    assert.deepEqual(steps, []);
    assert.deepEqual(notes, [`${HOST}: tapvm1 not present yet; not plugged`]);
  });

  it('deletes only what is ours: stale qr-/brq/vxlan links, addresses and routes on our devices, owned namespaces', () => {
    const st = routerState();
    const host = st.namespaces[HOST];
    host.links.push(
      link('brqold', 'bridge', { ifindex: 10 }),
      link('vxlan-9', 'vxlan', { ifindex: 11, master: 'brqnet1', vxlan: { id: 9, local: '10.1.1.1', dev: null, port: 4789 } }),
      link('tapvm9', 'tun', { ifindex: 12, master: 'brqnet1' }),
      link('eth1', '', { ifindex: 13, master: 'br-ex' }),
      link('br-ex', 'bridge', { ifindex: 14 }),
      link('tapvm8', 'tun', { ifindex: 15 }),
      // An operator's (libvirt's) bridge and its VM: not ours, left alone.
      link('virbr0', 'bridge', { ifindex: 16 }),
      link('tapvirt0', 'tun', { ifindex: 17, master: 'virbr0' }),
    );
    host.addresses.push(
      { device: 'br-ex', cidr: '192.0.2.1/24', family: 'inet', scope: 'global' },
      { device: 'eth0', cidr: '192.0.2.9/24', family: 'inet', scope: 'global' },
      { device: 'brqnet1', cidr: '10.9.0.1/24', family: 'inet', scope: 'global' },
    );
    host.routes.push(
      { family: 4, dst: 'default', gateway: '192.0.2.254', dev: 'eth0', type: 'unicast', protocol: 'boot', metric: 0 },
      { family: 4, dst: '10.50.0.0/16', gateway: '10.9.0.2', dev: 'brqnet1', type: 'unicast', protocol: 'static', metric: 0 },
    );
    const r = st.namespaces[ROUTER_NS];
    r.links.push(link('qr-old', 'veth', { ifindex: 20, peer: { ifindex: 30, netnsid: 0 } }), link('eth7', 'veth', { ifindex: 21 }));
    r.routes.push({ family: 4, dst: '10.66.0.0/16', gateway: null, dev: null, type: 'unreachable', protocol: 'static', metric: 0 });
    host.links.push(link('tapold', 'veth', { ifindex: 30, master: 'brqnet1', peer: { ifindex: 20, netnsid: 1 } }));
    st.ownedNamespaces.push(`${PREFIX}qdhcp-gone`, `${PREFIX}qrouter-gone`);
    const s = lines(diffHost(routerPlan(), st, opts).steps);
    assert.deepEqual(s, [
      // tapvm9 is a VM tap: unplugged, never deleted; tapvm8 is not plugged; tapold goes with qr-old;
      // tapvirt0 sits on a bridge that is not Nucleon's.
      `${HOST}: ip link set dev tapvm9 nomaster`,
      `${HOST}: ip addr del 10.9.0.1/24 dev brqnet1`,
      `${HOST}: ip route del 10.50.0.0/16 via 10.9.0.2 dev brqnet1 metric 0`,
      `${HOST}: ip link del brqold`,
      `${HOST}: ip link del vxlan-9`,
      `${ROUTER_NS}: ip route del unreachable 10.66.0.0/16 metric 0`,
      `${ROUTER_NS}: ip link del qr-old`,
      `${PREFIX}qdhcp-gone: ip netns del ${PREFIX}qdhcp-gone (namespace not in plan)`,
      `${PREFIX}qrouter-gone: ip netns del ${PREFIX}qrouter-gone (namespace not in plan)`,
    ]);
  });

  it('creates a missing flat bridge but never deletes one; a vxlan with the wrong id is recreated; flood entries follow the peers', () => {
    const p = plan([ns('', 'host', {
      bridges: [{ name: 'br-ex', mtu: 1500 }, { name: 'brqnet1', mtu: 1450 }],
      vxlans: [{ name: 'vxlan-5', vni: 5, bridge: 'brqnet1', mtu: 1450, local: '10.1.1.1', device: 'eth0', remotes: ['10.1.1.2', '10.1.1.3'] }],
    })]);
    const fresh = lines(diffHost(p, state([present(HOST)]), opts).steps);
    assert.ok(fresh.includes(`${HOST}: ip link add br-ex mtu 1500 type bridge`));
    assert.ok(fresh.includes(`${HOST}: ip link add vxlan-5 mtu 1450 type vxlan id 5 local 10.1.1.1 dev eth0 dstport 4789`));
    assert.ok(fresh.includes(`${HOST}: bridge fdb append 00:00:00:00:00:00 dev vxlan-5 dst 10.1.1.3`));
    const st = state([present(HOST, {
      links: [
        link('brqnet1', 'bridge', { mtu: 1450 }), link('br-ex', 'bridge'),
        link('vxlan-5', 'vxlan', { master: 'brqnet1', mtu: 1450, vxlan: { id: 5, local: '10.1.1.1', dev: 'eth0', port: 4789 } }),
      ],
      floods: { 'vxlan-5': ['10.1.1.2', '10.1.1.9'] },
    })]);
    assert.deepEqual(lines(diffHost(p, st, opts).steps), [
      `${HOST}: bridge fdb append 00:00:00:00:00:00 dev vxlan-5 dst 10.1.1.3`,
      `${HOST}: bridge fdb del 00:00:00:00:00:00 dev vxlan-5 dst 10.1.1.9`,
    ]);
    const noBrEx = plan([ns('', 'host', { bridges: [] })]);
    assert.deepEqual(lines(diffHost(noBrEx, state([present(HOST, { links: [link('br-ex', 'bridge')] })]), opts).steps), []);
    st.namespaces[HOST].links[2].vxlan!.id = 6;
    const again = lines(diffHost(p, st, opts).steps);
    assert.deepEqual(again.slice(0, 2), [`${HOST}: ip link del vxlan-5`, `${HOST}: ip link add vxlan-5 mtu 1450 type vxlan id 5 local 10.1.1.1 dev eth0 dstport 4789`]);
  });

  it('routes match the way the kernel prints them', () => {
    const s = (x: Partial<Parameters<typeof routeMatches>[1]>) => ({ family: 4 as const, dst: 'default', gateway: null, dev: null, type: 'unicast', protocol: 'static', metric: 0, ...x });
    assert.ok(routeMatches({ destination: '0.0.0.0/0', via: '10.0.0.1' }, s({ gateway: '10.0.0.1', dev: 'qg-1' })));
    assert.ok(routeMatches({ destination: '10.1.2.3/32', device: 'qr-1' }, s({ dst: '10.1.2.3', dev: 'qr-1' })));
    assert.ok(routeMatches({ destination: '10.9.0.0/16', type: 'unreachable' }, s({ dst: '10.9.0.0/16', type: 'unreachable' })));
    assert.ok(routeMatches({ destination: 'default', via: 'fe80::1' }, s({ family: 6, gateway: 'fe80::1', metric: 1024 })));
    assert.ok(!routeMatches({ destination: 'default', via: '10.0.0.1' }, s({ gateway: '10.0.0.2' })));
    assert.ok(!routeMatches({ destination: 'default', via: '10.0.0.1', metric: 5 }, s({ gateway: '10.0.0.1' })));
  });

  it('DHCP: start, restart on a new hash or a dead or displaced process, stop when the network is gone', () => {
    const server = { network_id: 'n1', namespace: `${PREFIX}qdhcp-n1`, interface: 'ns-1', dir: '/s/dhcp/n1', files: {}, args: [], hash: 'h2' };
    const p = plan([ns(`${PREFIX}qdhcp-n1`, 'dhcp')], { dhcp: [server] });
    const base = () => state([present(HOST), present(`${PREFIX}qdhcp-n1`, { links: [link('lo', '')] })]);
    const marker = { network_id: 'n1', namespace: `${PREFIX}qdhcp-n1`, hash: 'h2', pidFile: '/s/dhcp/n1/pid' };
    const run = (dhcp: HostState['dhcp']) => diffHost(p, { ...base(), dhcp }, opts).steps.map((s) => [s.kind, s.reason, s.dhcp?.pid ?? null]);
    assert.deepEqual(run({}), [['dhcp.start', 'never started', null]]);
    assert.deepEqual(run({ '/s/dhcp/n1': { dir: '/s/dhcp/n1', marker, pid: 10, alive: true, running: true } }), []);
    assert.deepEqual(run({ '/s/dhcp/n1': { dir: '/s/dhcp/n1', marker: { ...marker, hash: 'h1' }, pid: 10, alive: true, running: true } }), [['dhcp.start', 'configuration changed (h1 → h2)', 10]]);
    assert.deepEqual(run({ '/s/dhcp/n1': { dir: '/s/dhcp/n1', marker, pid: 10, alive: false, running: false } }), [['dhcp.start', 'not running', null]]);
    // Alive in an anonymous namespace (its namespace was deleted by hand): stopped, then started anew.
    assert.deepEqual(run({ '/s/dhcp/n1': { dir: '/s/dhcp/n1', marker, pid: 10, alive: true, running: false } }), [['dhcp.start', 'not running', 10]]);
    assert.deepEqual(run({
      '/s/dhcp/n1': { dir: '/s/dhcp/n1', marker, pid: 10, alive: true, running: true },
      '/s/dhcp/n0': { dir: '/s/dhcp/n0', marker: { ...marker, network_id: 'n0' }, pid: 11, alive: true, running: true },
    }), [['dhcp.stop', 'network n0 no longer served here', 11]]);
  });
});

// ---------------------------------------------------------------------------

const LISTING = `table inet nucleon_sg {
	chain raw_pre {
		comment "nucleon:aaaa"
		type filter hook prerouting priority raw; policy accept;
	}
	chain in_1_x {
		comment "nucleon:bbbb"
	}
}
table ip other {
	chain c {
	}
}
table inet nucleon_sg {
	set rg_web {
		type ipv4_addr
		flags interval
		elements = { 10.0.0.5, 10.1.0.0/24,
			     10.0.0.7 }
	}
}
table inet nucleon_sg {
	map ingress {
		type mark : verdict
		elements = { 0x00000001 : goto in_1_x, 0x00000002 : jump in_2_y }
	}
	map port_mark {
		type ifname : mark
		elements = { "tap1" : 0x00010000 }
	}
}
`;

describe('nft listing and table diff (pure)', () => {
  it('parses chains (comment, base or not), sets and maps across the three listings', () => {
    const [sg, other] = parseNftListing(LISTING);
    assert.equal(other.name, 'other');
    assert.deepEqual(sg.chains, { raw_pre: { comment: 'nucleon:aaaa', base: true }, in_1_x: { comment: 'nucleon:bbbb', base: false } });
    assert.deepEqual(sg.sets.rg_web, { type: 'ipv4_addr', flags: ['interval'], elements: ['10.0.0.5', '10.1.0.0/24', '10.0.0.7'] });
    assert.deepEqual(sg.maps.ingress.elements, { '0x00000001': 'goto in_1_x', '0x00000002': 'jump in_2_y' });
    assert.deepEqual(sg.maps.port_mark.elements, { '"tap1"': '0x00010000' });
  });

  it('normalises elements the way nft prints them back', () => {
    assert.equal(normElement('0x00010000'), normElement('65536'));
    assert.equal(normElement('"tap1"'), 'tap1');
    assert.equal(normElement('10.0.0.5/32'), '10.0.0.5');
    assert.equal(normElement('FA:16:3E:00:00:01'), 'fa:16:3e:00:00:01');
    assert.equal(normElement('10.0.0.1-10.0.0.9'), '10.0.0.1-10.0.0.9');
    assert.equal(normElement('10.0.0.1 . 80'), '10.0.0.1 . 80');
  });

  const table = (): NftTable => ({
    family: 'inet', name: 'nucleon_sg',
    sets: { rg_web: { type: 'ipv4_addr', flags: ['interval'], elements: ['10.0.0.5/32', '10.0.0.7'] } },
    maps: { ingress: { type: 'mark : verdict', elements: { '0x00000001': 'goto in_1_a', '0x00000002': 'goto in_2_b' } } },
    chains: {
      sg_fwd: { hook: { type: 'filter', hook: 'forward', priority: 'filter', policy: 'accept' }, rules: ['ct state established,related accept', 'meta mark and 0x0000ffff vmap @ingress'] },
      in_1_a: { rules: ['tcp dport 22 accept', 'drop'] },
      in_2_b: { rules: ['ip saddr @rg_web accept', 'drop'] },
    },
  });
  /** The state nft would list after loading t. */
  const stateOf = (t: NftTable): NftTableState => ({
    family: t.family, name: t.name,
    chains: Object.fromEntries(Object.entries(t.chains).map(([n, c]) => [n, { comment: chainComment(c), base: !!c.hook }])),
    sets: Object.fromEntries(Object.entries(t.sets).map(([n, s]) => [n, { type: s.type, flags: s.flags ?? [], elements: s.elements.map((e) => e.replace(/\/32$/, '')) }])),
    maps: Object.fromEntries(Object.entries(t.maps).map(([n, m]) => [n, { type: m.type, flags: [], elements: Object.fromEntries(Object.entries(m.elements).map(([k, v]) => [k, v])) }])),
  });

  it('an absent table is created whole; an equal one is left alone; a stale one is deleted', () => {
    const create = diffTable(table(), undefined);
    assert.equal(create.mode, 'create');
    assert.match(create.lines[0], /^table inet nucleon_sg \{/);
    assert.match(create.lines[0], /comment "nucleon:[0-9a-f]{16}"; type filter hook forward priority filter; policy accept;/);
    assert.equal(diffTable(table(), stateOf(table())).mode, 'none');
    assert.deepEqual(diffTable(undefined, stateOf(table())).lines, ['delete table inet nucleon_sg']);
  });

  it('a one-rule change in a port chain: new chain, element swap, old chain gone — never the table', () => {
    const want = table();
    delete want.chains.in_1_a;
    want.chains.in_1_c = { rules: ['tcp dport 2222 accept', 'drop'] };
    want.maps.ingress.elements['0x00000001'] = 'goto in_1_c';
    const d = diffTable(want, stateOf(table()));
    assert.equal(d.mode, 'incremental');
    assert.deepEqual(d.lines.map((l) => l.replace(/"nucleon:[0-9a-f]+"/, '"…"')), [
      'add chain inet nucleon_sg in_1_c { comment "…"; }',
      'add rule inet nucleon_sg in_1_c tcp dport 2222 accept',
      'add rule inet nucleon_sg in_1_c drop',
      'delete element inet nucleon_sg ingress { 0x00000001 }',
      'add element inet nucleon_sg ingress { 0x00000001 : goto in_1_c }',
      'flush chain inet nucleon_sg in_1_a',
      'delete chain inet nucleon_sg in_1_a',
    ]);
    assert.equal(countStatements(d.lines), 7);
    assert.deepEqual(d.mapChanges, [{ map: 'ingress', mapType: 'mark : verdict', key: '1', kind: 'changed' }]);
  });

  it('set elements are added and deleted one by one; a changed base chain is recreated in place', () => {
    const want = table();
    want.sets.rg_web.elements = ['10.0.0.7', '10.0.0.8'];
    want.chains.sg_fwd.rules = ['ct state established,related accept', 'ct state invalid drop', 'meta mark and 0x0000ffff vmap @ingress'];
    const d = diffTable(want, stateOf(table()));
    assert.deepEqual(d.lines.map((l) => l.replace(/"nucleon:[0-9a-f]+"/, '"…"')), [
      'flush chain inet nucleon_sg sg_fwd',
      'delete chain inet nucleon_sg sg_fwd',
      'add chain inet nucleon_sg sg_fwd { comment "…"; type filter hook forward priority filter; policy accept; }',
      'add rule inet nucleon_sg sg_fwd ct state established,related accept',
      'add rule inet nucleon_sg sg_fwd ct state invalid drop',
      'add rule inet nucleon_sg sg_fwd meta mark and 0x0000ffff vmap @ingress',
      'delete element inet nucleon_sg rg_web { 10.0.0.5 }',
      'add element inet nucleon_sg rg_web { 10.0.0.8 }',
    ]);
    assert.deepEqual(d.setRemovals, [{ set: 'rg_web', setType: 'ipv4_addr', element: '10.0.0.5' }]);
  });

  it('a regular chain changed under the same name, or a set of another type, replaces the table atomically', () => {
    const want = table();
    want.chains.in_2_b.rules = ['drop'];
    const d = diffTable(want, stateOf(table()));
    assert.equal(d.mode, 'replace');
    assert.deepEqual(d.lines.slice(0, 2), ['table inet nucleon_sg {}', 'delete table inet nucleon_sg']);
    const t2 = table();
    t2.sets.rg_web.type = 'ipv6_addr';
    t2.sets.rg_web.elements = [];
    assert.equal(diffTable(t2, stateOf(table())).mode, 'replace');
  });

  it('renders a table that names its chains\' hashes', () => {
    const text = renderTable(table());
    assert.equal((text.match(/comment "nucleon:/g) ?? []).length, 3);
    assert.match(text, /map ingress \{ type mark : verdict; elements = \{ 0x00000001 : goto in_1_a, 0x00000002 : goto in_2_b \} \}/);
  });

  it('conntrack cuts: a changed port chain (by device or index), removed remote-group members, floating IPs', () => {
    const firewall = [
      { port_id: 'p1', device: 'tap1', index: 1, zone: 3, addresses: ['10.0.0.5', '10.0.0.0/28'] },
      { port_id: 'p2', device: 'tap2', index: 2, zone: 4, addresses: ['10.0.1.5'] },
    ];
    const fw = { family: 'inet', name: 'nucleon_sg', lines: ['x'], mode: 'incremental' as const,
      mapChanges: [
        { map: 'ingress', mapType: 'mark : verdict', key: '1', kind: 'changed' as const },
        { map: 'egress', mapType: 'mark : verdict', key: String(2 * 65536), kind: 'changed' as const },
      ],
      setRemovals: [{ set: 'rg_web', setType: 'ipv4_addr', element: '10.0.0.9' }, { set: 'ag', setType: 'ipv4_addr', element: '10.8.0.0/16' }] };
    const l2 = { family: 'bridge', name: 'nucleon_l2', lines: ['x'], mode: 'incremental' as const,
      mapChanges: [{ map: 'port_spoof', mapType: 'ifname : verdict', key: 'tap2', kind: 'changed' as const }], setRemovals: [] };
    const nat = { family: 'ip', name: 'nucleon_nat', lines: ['x'], mode: 'incremental' as const,
      mapChanges: [
        { map: 'fip_dnat', mapType: 'ipv4_addr : ipv4_addr', key: '203.0.113.20', kind: 'removed' as const },
        { map: 'fip_snat', mapType: 'ipv4_addr : ipv4_addr', key: '10.0.0.5', kind: 'removed' as const },
      ], setRemovals: [] };
    assert.deepEqual(conntrackCuts([fw, l2, nat], firewall).map((a) => a.join(' ')), [
      '-D -w 3 -d 10.0.0.5', // ingress of port 1 (a CIDR address pair is not a conntrack filter)
      '-D -w 4 -s 10.0.1.5', // egress of port 2
      '-D -w 3 -s 10.0.0.9', '-D -w 3 -d 10.0.0.9', '-D -w 4 -s 10.0.0.9', '-D -w 4 -d 10.0.0.9',
      '-D -w 4 -d 10.0.1.5', // port 2's spoof chain: both directions (the -s one is already there)
      '-D -d 203.0.113.20', '-D -s 10.0.0.5',
    ]);
  });
});

describe('host state parsers (pure)', () => {
  it('reads links: kind, master, up flag, vxlan attributes, veth peer', () => {
    const [br, vx, tap] = parseLinks(JSON.stringify([
      { ifindex: 2, ifname: 'brq1', flags: ['BROADCAST', 'UP'], mtu: 1450, operstate: 'DOWN', address: 'AA:BB:CC:00:00:01', linkinfo: { info_kind: 'bridge' } },
      { ifindex: 3, ifname: 'vxlan-5', flags: [], mtu: 1450, operstate: 'DOWN', master: 'brq1', linkinfo: { info_kind: 'vxlan', info_data: { id: 5, local: '10.1.1.1', link: 'eth0', port: 4789 } } },
      { ifindex: 4, ifname: 'tap1', flags: ['UP'], mtu: 1500, operstate: 'UP', link_index: 2, link_netnsid: 0, linkinfo: { info_kind: 'veth' } },
    ]));
    assert.deepEqual([br.kind, br.up, br.address], ['bridge', true, 'aa:bb:cc:00:00:01']);
    assert.deepEqual([vx.master, vx.up, vx.vxlan], ['brq1', false, { id: 5, local: '10.1.1.1', dev: 'eth0', port: 4789 }]);
    assert.deepEqual(tap.peer, { ifindex: 2, netnsid: 0 });
  });

  it('reads flood entries of vxlan devices only for the all-zero MAC', () => {
    const text = '@dev vxlan-5\n[{"mac":"00:00:00:00:00:00","dst":"10.1.1.3"},{"mac":"fa:16:3e:00:00:01","dst":"10.1.1.9"},{"mac":"00:00:00:00:00:00","dst":"10.1.1.2"}]\n\n@dev vxlan-6\n[]\n';
    assert.deepEqual(parseFloods(text), { 'vxlan-5': ['10.1.1.2', '10.1.1.3'], 'vxlan-6': [] });
  });
});
