// IPsec connection status from charon's SA list (vici list-sas events). Pure.
// ACTIVE needs both halves: an IKE_SA in ESTABLISHED *and* a CHILD_SA of the
// connection's child in INSTALLED. An ESTABLISHED IKE_SA without a child is
// what a broken kernel backend or a traffic-selector mismatch looks like, and
// no traffic flows then, so it is DOWN (notes §1, status mapping).
import type { ViciMessage } from './vici.ts';

export type IpsecStatus = 'ACTIVE' | 'DOWN' | 'ERROR';

/** What one SA list says about one connection. */
export interface SaSummary { ike: string | null; children: Array<{ name: string; state: string }> }

/** list-sa events (each `{ <conn name>: { state, child-sas: { … } } }`) → per connection name. */
export function summariseSas(events: ViciMessage[]): Map<string, SaSummary[]> {
  const out = new Map<string, SaSummary[]>();
  for (const ev of events) {
    for (const [conn, sa] of Object.entries(ev)) {
      if (typeof sa !== 'object' || Array.isArray(sa)) continue;
      const children: SaSummary['children'] = [];
      const childSas = sa['child-sas'];
      if (childSas && typeof childSas === 'object' && !Array.isArray(childSas)) {
        for (const child of Object.values(childSas)) {
          if (typeof child !== 'object' || Array.isArray(child)) continue;
          children.push({ name: String(child.name ?? ''), state: String(child.state ?? '') });
        }
      }
      const list = out.get(conn) ?? [];
      list.push({ ike: typeof sa.state === 'string' ? sa.state : null, children });
      out.set(conn, list);
    }
  }
  return out;
}

/** One connection's status: any of its IKE_SAs established with the named child installed. */
export function connectionStatus(sas: SaSummary[] | undefined, child: string): 'ACTIVE' | 'DOWN' {
  for (const sa of sas ?? []) {
    if (sa.ike === 'ESTABLISHED' && sa.children.some((c) => c.name === child && c.state === 'INSTALLED')) return 'ACTIVE';
  }
  return 'DOWN';
}

/**
 * Statuses for every connection an instance should run. `failed` are the
 * connections whose load-conn (or load-shared) was refused: ERROR, whatever
 * an old SA still says.
 */
export function instanceStatuses(
  connections: Array<{ id: string; child: string }>, events: ViciMessage[], failed: ReadonlySet<string> = new Set(),
): Record<string, IpsecStatus> {
  const sas = summariseSas(events);
  const out: Record<string, IpsecStatus> = {};
  for (const c of connections) out[c.id] = failed.has(c.id) ? 'ERROR' : connectionStatus(sas.get(c.id), c.child);
  return out;
}
