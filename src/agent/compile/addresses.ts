// Address lists as nft set elements. Interval sets refuse overlapping
// elements ("conflicting intervals"), and CIDR blocks either nest or are
// disjoint, so dropping every block inside an earlier one is enough.
import { eui64Address, formatIp, formatNet, maxPrefixlen, parseIp, parseNet, type IpVersion, type Net } from '../../services/ipam.ts';

const LINK_LOCAL = parseNet('fe80::/64')!;

/** The IPv6 link-local address a MAC gets (modified EUI-64), as the guest's kernel derives it. */
export const linkLocal = (mac: string): string => formatIp(6, eui64Address(LINK_LOCAL, mac));

const elementText = (n: Net): string => (n.prefixlen === maxPrefixlen(n.version) ? formatIp(n.version, n.first) : formatNet(n));

/**
 * Addresses and CIDRs of one IP version as nft elements: canonical text
 * (hosts without /32), sorted by address, blocks inside others dropped.
 * Unparsable text and other versions are skipped.
 */
export function addressElements(texts: Iterable<string>, version: IpVersion): string[] {
  const nets: Net[] = [];
  for (const t of texts) {
    const n = parseNet(t);
    if (n && n.version === version) nets.push(n);
  }
  // Larger blocks first at equal start, so a nested block always follows its container.
  nets.sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : a.prefixlen - b.prefixlen));
  const kept: Net[] = [];
  for (const n of nets) {
    const last = kept[kept.length - 1];
    if (last && n.first >= last.first && n.last <= last.last) continue;
    kept.push(n);
  }
  return kept.map(elementText);
}

/** An IPv4 address (not a CIDR). */
export const isIpv4 = (text: string): boolean => parseIp(text)?.version === 4;

/** The IP version of an address or CIDR text, or null. */
export const versionOf = (text: string): IpVersion | null => parseNet(text)?.version ?? null;
