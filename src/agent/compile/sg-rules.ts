// Security group rules → nft rule text for the inet table. A rule becomes one
// line: remote match (CIDR, remote-group set or address-group set, else just
// the family), protocol match, verdict. Ingress rules match the source,
// egress rules the destination.
import type { GroupPolicy, Rule } from '../../services/security-policy.ts';
import { IP_PROTOCOLS } from '../../resources/security-group.ts';
import { parseNet } from '../../services/ipam.ts';
import { addressElements } from './addresses.ts';
import { id11 } from './util.ts';

export type Direction = 'ingress' | 'egress';

/** A named set a rule refers to: remote-group members or an address group, per IP version. */
export interface SetRef {
  name: string;
  kind: 'rg' | 'ag';
  id: string;
  version: 4 | 6;
}

export const setName = (kind: 'rg' | 'ag', id: string, version: 4 | 6): string => `${kind}_${id11(id)}_v${version}`;

/** Protocols whose rules carry a destination port range. */
const PORT_PROTOCOLS = new Set(['tcp', 'udp', 'sctp', 'udplite', 'dccp']);
const PROTOCOL_NAMES = new Map(Object.entries(IP_PROTOCOLS).map(([name, n]) => [n, name]));

type Protocol =
  | { kind: 'any' }
  | { kind: 'ports'; name: string }
  | { kind: 'icmp'; name: 'icmp' | 'icmpv6' }
  | { kind: 'number'; n: number };

/**
 * The protocol of a rule for one IP version, by name or number as Neutron
 * stores it. 'icmp' in an IPv6 rule means ICMPv6, as in Neutron. Protocol 0
 * means any (iptables' -p 0). null: nothing we can express (rule skipped).
 */
export function protocolOf(text: string | null, version: 4 | 6): Protocol | null {
  if (text === null || text === '' || text === 'any') return { kind: 'any' };
  const n = /^\d+$/.test(text) ? Number(text) : IP_PROTOCOLS[text.toLowerCase()];
  if (n === undefined || n > 255) return null;
  if (n === 0) return { kind: 'any' };
  if (n === 1 && version === 6) return { kind: 'icmp', name: 'icmpv6' };
  if (n === 1) return { kind: 'icmp', name: 'icmp' };
  if (n === 58 && version === 6) return { kind: 'icmp', name: 'icmpv6' };
  const name = PROTOCOL_NAMES.get(n);
  if (name && PORT_PROTOCOLS.has(name)) return { kind: 'ports', name };
  return { kind: 'number', n };
}

function protocolMatch(p: Protocol, min: number | null, max: number | null): string | null {
  switch (p.kind) {
    case 'any': return null;
    case 'number': return `meta l4proto ${p.n}`;
    case 'ports': {
      if (min === null && max === null) return `meta l4proto ${p.name}`;
      const lo = min ?? max!;
      const hi = max ?? min!;
      if (lo <= 1 && hi >= 65535) return `meta l4proto ${p.name}`;
      return `${p.name} dport ${lo === hi ? lo : `${lo}-${hi}`}`;
    }
    case 'icmp':
      // Neutron's convention: port_range_min is the ICMP type, port_range_max the code.
      if (min === null) return `meta l4proto ${p.name === 'icmp' ? 'icmp' : 'ipv6-icmp'}`;
      return max === null ? `${p.name} type ${min}` : `${p.name} type ${min} ${p.name} code ${max}`;
  }
}

/**
 * One rule as nft text without its verdict, plus the named set it uses; null
 * when it cannot match anything we can express (a remote prefix of the other
 * IP version, an unknown protocol).
 */
export function ruleMatch(rule: Rule): { match: string; set: SetRef | null } | null {
  const version = rule.ethertype === 'IPv6' ? 6 : 4;
  const addr = `${version === 4 ? 'ip' : 'ip6'} ${rule.direction === 'ingress' ? 'saddr' : 'daddr'}`;
  const proto = protocolOf(rule.protocol, version);
  if (proto === null) return null;
  let set: SetRef | null = null;
  let remote = `meta nfproto ipv${version}`;
  if (rule.remote_group_id !== null) {
    set = { name: setName('rg', rule.remote_group_id, version), kind: 'rg', id: rule.remote_group_id, version };
  } else if (rule.remote_address_group_id !== null) {
    set = { name: setName('ag', rule.remote_address_group_id, version), kind: 'ag', id: rule.remote_address_group_id, version };
  } else if (rule.remote_ip_prefix !== null) {
    const net = parseNet(rule.remote_ip_prefix);
    if (!net || net.version !== version) return null;
    // 0.0.0.0/0 and ::/0 are "anywhere" of that family.
    if (net.prefixlen > 0) remote = `${addr} ${addressElements([rule.remote_ip_prefix], version)[0]}`;
  }
  if (set) remote = `${addr} @${set.name}`;
  const p = protocolMatch(proto, rule.port_range_min, rule.port_range_max);
  return { match: p === null ? remote : `${remote} ${p}`, set };
}

export interface GroupLines {
  ingress: string[];
  egress: string[];
  sets: SetRef[];
}

/**
 * A group's rules as chain lines (with verdict: ingress accepts, egress
 * returns to the forward chain so the destination's ingress rules still run).
 * Stateless groups (stateful=false) compile like stateful ones: every chain
 * sits behind `ct state established,related accept`, which is more permissive
 * than Neutron's stateless semantics but never less.
 */
export function groupLines(group: GroupPolicy): GroupLines {
  const out: GroupLines = { ingress: [], egress: [], sets: [] };
  for (const rule of group.rules) {
    const m = ruleMatch(rule);
    if (!m) continue;
    out[rule.direction].push(`${m.match} ${rule.direction === 'ingress' ? 'accept' : 'return'}`);
    if (m.set) out.sets.push(m.set);
  }
  return out;
}
