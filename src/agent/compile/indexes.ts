// Stable small numbers: port indexes (the halves of a firewall mark) and
// network conntrack zones. A number, once given, is kept for as long as its
// port or network exists in the model, so that the live firewall never has to
// renumber (renumbering would rewrite every mark, map element and chain name).
// New ids get the lowest free numbers, in id order, so the result depends only
// on (previous numbers, ids), never on input order.
import { sortBy } from './util.ts';

export const MAX_NUMBER = 65535;

const valid = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= MAX_NUMBER;

/**
 * @param previous numbers from the last compile (HostFacts)
 * @param existing ids that still exist: their previous numbers are kept
 * @param needed ids that must have a number now (a subset of existing)
 * @returns id → number, for every kept or newly given id, keys in id order
 */
export function assignNumbers(previous: Record<string, number>, existing: Set<string>, needed: Iterable<string>): Record<string, number> {
  const taken = new Set<number>();
  const kept = new Map<string, number>();
  // In id order, so that a corrupt input with a duplicated number resolves the
  // same way every time: the lower id keeps it, the other is renumbered.
  for (const id of sortBy(Object.keys(previous), (k) => k)) {
    const n = previous[id];
    if (!existing.has(id) || !valid(n) || taken.has(n)) continue;
    taken.add(n);
    kept.set(id, n);
  }
  let next = 1;
  for (const id of sortBy(new Set(needed), (k) => k)) {
    if (kept.has(id)) continue;
    while (taken.has(next)) next++;
    if (next > MAX_NUMBER) throw new Error(`more than ${MAX_NUMBER} ports or networks on one host`);
    taken.add(next);
    kept.set(id, next);
  }
  const out: Record<string, number> = {};
  for (const id of sortBy(kept.keys(), (k) => k)) out[id] = kept.get(id)!;
  return out;
}
