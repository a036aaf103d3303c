// NftTable → `nft -f` input. Deterministic: sets, maps and chains sorted by
// name (base chains first, since they are what a reader looks for), elements
// and rules in plan order. Chains, sets and maps may refer to one another in
// any order: nft resolves names within one file. Every chain body is written
// one rule per line, so the one-line `{ return }` parse error of nft 1.0.6
// cannot happen, and an empty chain is valid.
import type { NftTable } from '../plan.ts';
import { cmp } from './util.ts';

const I1 = '\t';
const I2 = '\t\t';

function elements(items: string[]): string[] {
  if (items.length === 0) return [];
  return [`${I2}elements = {`, ...items.map((e, i) => `${I2}\t${e}${i < items.length - 1 ? ',' : ''}`), `${I2}}`];
}

export function renderNftTable(table: NftTable): string {
  const out: string[] = [`table ${table.family} ${table.name} {`];
  const sorted = <T>(r: Record<string, T>): Array<[string, T]> => Object.entries(r).sort(([a], [b]) => cmp(a, b));
  for (const [name, set] of sorted(table.sets)) {
    out.push(`${I1}set ${name} {`, `${I2}type ${set.type}`);
    if (set.flags?.length) out.push(`${I2}flags ${set.flags.join(', ')}`);
    out.push(...elements(set.elements), `${I1}}`);
  }
  for (const [name, map] of sorted(table.maps)) {
    out.push(`${I1}map ${name} {`, `${I2}type ${map.type}`);
    out.push(...elements(Object.entries(map.elements).map(([k, v]) => `${k} : ${v}`)), `${I1}}`);
  }
  const chains = sorted(table.chains).sort(([, a], [, b]) => Number(!a.hook) - Number(!b.hook));
  for (const [name, chain] of chains) {
    out.push(`${I1}chain ${name} {`);
    if (chain.hook) {
      const h = chain.hook;
      out.push(`${I2}type ${h.type} hook ${h.hook} priority ${h.priority}; policy ${h.policy};`);
    }
    out.push(...chain.rules.map((r) => `${I2}${r}`), `${I1}}`);
  }
  out.push('}');
  return `${out.join('\n')}\n`;
}
