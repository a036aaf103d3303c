// The host firewall for VM ports (data-plane notes, section 2): a stateless
// bridge table that drops spoofed frames and marks each frame with
// (source port index << 16) | destination port index, and a stateful inet
// table (br_netfilter sends bridged IP through it) that sends the two halves
// of the mark to the source port's egress chain and the destination port's
// ingress chain through verdict maps. Ports without a mark (router and DHCP
// legs, ports without port security) are not filtered.
//
// Per-port chains are named after their index and a hash of their rules, so a
// changed rule set is a new chain plus one map element: apply swaps that
// element atomically and never rewrites a table that 1,000 ports share.
import type { ModelPort } from '../model.ts';
import type { FirewallPort, NftTable } from '../plan.ts';
import type { SecurityPolicy } from '../../services/security-policy.ts';
import { addressElements, linkLocal, versionOf } from './addresses.ts';
import { groupLines, type SetRef } from './sg-rules.ts';
import { hash8, hexMark, nftSet, quote, sortBy, uniq } from './util.ts';

export const L2_TABLE = 'nucleon_l2';
export const SG_TABLE = 'nucleon_sg';

export interface FirewalledPort {
  port: ModelPort;
  /** Host-side device (the VM tap). */
  device: string;
  index: number;
  /** Conntrack zone of the port's network (0, the default zone, on an operator bridge). */
  zone: number;
}

export interface FirewallInput {
  /** Ports with port security on, plugged here, in id order. */
  ports: FirewalledPort[];
  /** One conntrack zone per bridge (in the inet hooks, iifname is the bridge). */
  zones: Array<{ bridge: string; zone: number }>;
  security: SecurityPolicy;
}

export interface FirewallPlan {
  tables: NftTable[];
  ports: FirewallPort[];
}

const inMark = (index: number) => hexMark(index * 0x10000);
const outMark = (index: number) => hexMark(index);

export function planFirewall(input: FirewallInput): FirewallPlan {
  const l2 = l2Table();
  const sg = sgTable(input.zones);
  const chainsOf = portChainsCache(input.security);
  const usedSets = new Map<string, SetRef>();
  const ports: FirewallPort[] = [];

  for (const fp of input.ports) {
    const { port, device, index } = fp;
    const dev = quote(device);
    const spoof = spoofRules(port);
    const spoofChain = `spoof_${index}_${hash8(spoof.join('\n'))}`;
    l2.maps.port_mark.elements[dev] = inMark(index);
    l2.maps.port_spoof.elements[dev] = `jump ${spoofChain}`;
    l2.maps.port_out.elements[dev] = `jump out_${index}`;
    l2.chains[spoofChain] = { rules: spoof };
    // nft 1.0.6 cannot OR a map lookup into the mark, hence one tiny chain per port.
    l2.chains[`out_${index}`] = { rules: [`meta mark set meta mark | ${outMark(index)}`] };

    const chains = chainsOf(port.security_groups);
    const egress = `eg_${index}_${chains.egress.hash}`;
    const ingress = `in_${index}_${chains.ingress.hash}`;
    // goto: an allowed egress rule's `return` then resumes sg_fwd, which goes on to the ingress side.
    sg.maps.egress.elements[inMark(index)] = `goto ${egress}`;
    sg.maps.ingress.elements[outMark(index)] = `goto ${ingress}`;
    sg.chains[egress] = { rules: [...chains.egress.lines, 'drop'] };
    sg.chains[ingress] = { rules: [...chains.ingress.lines, 'drop'] };
    for (const s of chains.sets) usedSets.set(s.name, s);

    ports.push({ port_id: port.id, device, index, zone: fp.zone, addresses: portAddresses(port) });
  }
  for (const s of sortBy(usedSets.values(), (s) => s.name)) {
    const source = s.kind === 'rg' ? input.security.remoteGroupMembers.get(s.id) : input.security.addressGroups.get(s.id);
    sg.sets[s.name] = { type: s.version === 4 ? 'ipv4_addr' : 'ipv6_addr', flags: ['interval'], elements: addressElements(source ?? [], s.version) };
  }
  return { tables: [l2, sg], ports };
}

/** Every source a port may use: fixed IPs, then allowed address pairs. */
const portAddresses = (port: ModelPort): string[] => uniq([...port.fixed_ips.map((f) => f.ip_address), ...port.allowed_address_pairs.map((p) => p.ip_address)]);

function l2Table(): NftTable & { maps: Record<'port_mark' | 'port_spoof' | 'port_out', { type: string; elements: Record<string, string> }> } {
  return {
    family: 'bridge',
    name: L2_TABLE,
    sets: {},
    maps: {
      port_mark: { type: 'ifname : mark', elements: {} },
      port_spoof: { type: 'ifname : verdict', elements: {} },
      port_out: { type: 'ifname : verdict', elements: {} },
    },
    chains: {
      // Bridge chains at -300/-200 run before br_netfilter (priority 0) hands the frame to the inet hooks.
      pre: {
        hook: { type: 'filter', hook: 'prerouting', priority: '-300', policy: 'accept' },
        rules: ['iifname vmap @port_spoof', 'meta mark set iifname map @port_mark'],
      },
      // `fwd` is an nft keyword, hence fwd_mark.
      fwd_mark: { hook: { type: 'filter', hook: 'forward', priority: '-200', policy: 'accept' }, rules: ['oifname vmap @port_out'] },
    },
  };
}

function sgTable(zones: Array<{ bridge: string; zone: number }>): NftTable & { maps: Record<'egress' | 'ingress', { type: string; elements: Record<string, string> }> } {
  return {
    family: 'inet',
    name: SG_TABLE,
    sets: {},
    maps: {
      egress: { type: 'mark : verdict', elements: {} },
      ingress: { type: 'mark : verdict', elements: {} },
    },
    chains: {
      // One zone per bridge, so that overlapping tenant addresses never share a conntrack entry.
      raw_pre: {
        hook: { type: 'filter', hook: 'prerouting', priority: 'raw', policy: 'accept' },
        rules: zones.map((z) => `iifname ${quote(z.bridge)} ct zone set ${z.zone}`),
      },
      sg_fwd: {
        hook: { type: 'filter', hook: 'forward', priority: 'filter', policy: 'accept' },
        rules: [
          // No mark: neither end is a filtered port (routers, DHCP, port security off, or not bridged at all).
          `meta mark ${hexMark(0)} accept`,
          'ct state established,related accept',
          'ct state invalid drop',
          'jump sg_egress',
          'jump sg_ingress',
        ],
      },
      // What every port may send whatever its groups say (Neutron allows the same):
      // DHCP and DHCPv6 requests, router solicitation, neighbour discovery, MLD reports.
      sg_egress: {
        rules: [
          'meta nfproto ipv4 udp sport 68 udp dport 67 return',
          'meta nfproto ipv6 udp sport 546 udp dport 547 return',
          'icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld2-listener-report } return',
          'meta mark and 0xffff0000 vmap @egress',
        ],
      },
      // What every port may receive: DHCP replies (VMs cannot send them: the
      // spoof chains drop server-port traffic from VMs), router
      // advertisements, neighbour discovery, MLD queries.
      sg_ingress: {
        rules: [
          'meta nfproto ipv4 udp sport 67 udp dport 68 accept',
          'meta nfproto ipv6 udp sport 547 udp dport 546 accept',
          'icmpv6 type { mld-listener-query, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept',
          'meta mark and 0x0000ffff vmap @ingress',
        ],
      },
    },
  };
}

interface ChainRules { lines: string[]; hash: string }

/**
 * The egress and ingress rule lines of a list of groups. Lines are sorted and
 * deduplicated (every line of a chain has the same verdict, so order does not
 * matter): ports with the same groups share one result, whatever their order.
 */
function portChainsCache(security: SecurityPolicy): (groupIds: string[]) => { egress: ChainRules; ingress: ChainRules; sets: SetRef[] } {
  const byGroup = new Map<string, ReturnType<typeof groupLines>>();
  const byGroups = new Map<string, { egress: ChainRules; ingress: ChainRules; sets: SetRef[] }>();
  const linesOf = (id: string) => {
    let g = byGroup.get(id);
    if (!g) {
      const group = security.groups.get(id);
      g = group ? groupLines(group) : { ingress: [], egress: [], sets: [] };
      byGroup.set(id, g);
    }
    return g;
  };
  const chain = (lines: string[]): ChainRules => {
    const sorted = uniq(lines).sort();
    return { lines: sorted, hash: hash8(sorted.join('\n')) };
  };
  return (groupIds) => {
    const ids = uniq(groupIds).sort();
    const key = ids.join(',');
    let r = byGroups.get(key);
    if (!r) {
      const groups = ids.map(linesOf);
      r = {
        egress: chain(groups.flatMap((g) => g.egress)),
        ingress: chain(groups.flatMap((g) => g.ingress)),
        sets: groups.flatMap((g) => g.sets),
      };
      byGroups.set(key, r);
    }
    return r;
  };
}

/**
 * Anti-spoofing for one VM port (bridge family, stateless): only its MACs,
 * only its addresses (fixed IPs, allowed address pairs, IPv6 link-local of
 * each MAC, `::` for duplicate address detection), no DHCP server and no
 * router advertisements from a VM. A frame that passes falls through to the
 * mark rule. Allowed pairs widen the MAC and the source sets independently
 * (a pair's address is not tied to its MAC).
 */
export function spoofRules(port: ModelPort): string[] {
  const macs = uniq([port.mac_address, ...port.allowed_address_pairs.map((p) => p.mac_address || port.mac_address)].map((m) => m.toLowerCase()));
  const sources = [...port.fixed_ips.map((f) => f.ip_address), ...port.allowed_address_pairs.map((p) => p.ip_address)];
  const v4 = addressElements(sources, 4);
  const v6 = addressElements([...sources.filter((s) => versionOf(s) === 6), ...macs.map(linkLocal)], 6);
  return [
    `ether saddr != ${nftSet(macs)} drop`,
    `arp saddr ether != ${nftSet(macs)} drop`,
    // 0.0.0.0: ARP probes (address conflict detection) claim no address.
    `arp saddr ip != ${nftSet(addressElements(['0.0.0.0', ...v4], 4))} drop`,
    // A DHCP client has no address yet.
    'ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 return',
    'udp sport 67 udp dport 68 drop',
    'udp sport 547 udp dport 546 drop',
    'icmpv6 type nd-router-advert drop',
    v4.length ? `ether type ip ip saddr != ${nftSet(v4)} drop` : 'ether type ip drop',
    // `::` is the source of duplicate address detection and of MLD reports before an address is configured.
    `ether type ip6 ip6 saddr != ${nftSet(addressElements(['::', ...v6], 6))} drop`,
  ];
}
