// Small helpers shared by the compile modules: names derived from ids, short
// content hashes, deterministic sorting. All pure.
import { createHash } from 'node:crypto';

/** The first 11 characters of an id: what every device name embeds (15-character limit). */
export const id11 = (id: string): string => id.slice(0, 11);

export const routerLegName = (kind: 'qr' | 'qg', portId: string): string => `${kind}-${id11(portId)}`;
export const dhcpLegName = (portId: string): string => `ns-${id11(portId)}`;
export const vxlanName = (vni: number): string => `vxlan-${vni}`;

/** sha256 hex of a text: stable across runs and hosts (apply compares hashes from different compiles). */
export const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** 8 hex digits: enough to tell two rule lists of one port apart, short enough for a chain name. */
export const hash8 = (text: string): string => sha256(text).slice(0, 8);

/** A 32-bit mark as nft prints it back (0x + 8 digits), so the plan reads like `nft list`. */
export const hexMark = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;

/** Compare strings by code unit: unlike localeCompare it never depends on the host's locale. */
export const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export function sortBy<T>(items: Iterable<T>, key: (t: T) => string): T[] {
  return [...items].sort((a, b) => cmp(key(a), key(b)));
}

/** Unique values, first occurrence kept. */
export const uniq = <T>(items: Iterable<T>): T[] => [...new Set(items)];

/** Appends to the list stored under key, creating it. */
export function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** An nft anonymous-set operand: a bare value for one element, `{ a, b }` for more. */
export const nftSet = (values: string[]): string => (values.length === 1 ? values[0] : `{ ${values.join(', ')} }`);

/** An nft string literal (interface names). Names come from ids, so they never hold a quote. */
export const quote = (s: string): string => `"${s}"`;
