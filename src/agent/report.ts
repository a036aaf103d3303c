// Status back to the model once a plan is applied: ports wired on this host
// are bound here (binding:host_id, binding:vif_type) and ACTIVE, ports bound
// here whose device went away are DOWN; floating IPs served by this host's
// routers are ACTIVE, and DOWN once disassociated. This is what users and Nova
// wait for, so it goes through the store like any change: revision bumped,
// updated_at set, a change-feed row each.
//
// Passes run every few seconds, so nothing is written when nothing changed:
// the wanted state is compared with a plain read first, and only rows that
// differ are locked, compared again and written, in one transaction.
import type { Db, Store, Tx } from '../store/database.ts';
import { recordResourceChange } from '../services/resource-service.ts';
import { now } from '../services/resource-store.ts';
import type { HostPlan, PortBinding } from './plan.ts';

/** Neutron's linuxbridge vif_details: the agent filters the port, plain L2 connectivity. */
const BRIDGE_VIF_DETAILS = JSON.stringify({ connectivity: 'l2', port_filter: true });

export interface ReportOptions {
  host: string;
  /** Routers (and so floating IPs) are served by network nodes only. */
  networkNode: boolean;
}

export interface ReportResult {
  /** Port ids whose status or binding was written. */
  ports: string[];
  /** Floating IP ids whose status was written. */
  floatingips: string[];
}

interface PortState { status: string; binding_host_id: string; binding_vif_type: string; binding_vif_details: string }
interface PortRowState extends PortState { id: string }

/** What a port should look like after this pass, or null to leave it alone. */
function wantedPort(row: PortRowState, binding: PortBinding | undefined, host: string): PortState | null {
  if (binding) {
    return {
      status: binding.active ? 'ACTIVE' : 'DOWN',
      binding_host_id: host,
      binding_vif_type: binding.vif_type,
      binding_vif_details: binding.vif_type === 'bridge' ? BRIDGE_VIF_DETAILS : '{}',
    };
  }
  // Bound here before, no longer wired (the tap went away): DOWN, the binding stays, as Neutron keeps it.
  if (row.binding_host_id === host) return { ...row, status: 'DOWN' };
  return null;
}

const samePort = (a: PortState, b: PortState) => a.status === b.status && a.binding_host_id === b.binding_host_id
  && a.binding_vif_type === b.binding_vif_type && a.binding_vif_details === b.binding_vif_details;

const PORT_COLUMNS = ['id', 'status', 'binding_host_id', 'binding_vif_type', 'binding_vif_details'] as const;
const CHUNK = 500;

/** The rows a report may change: ports in the plan's bindings and ports bound to this host. */
async function readPorts(db: Db | Tx, host: string, ids: string[], lock: boolean): Promise<PortRowState[]> {
  const out: PortRowState[] = [];
  let q = db.selectFrom('ports').select(PORT_COLUMNS).where('binding_host_id', '=', host);
  if (lock) q = q.forUpdate();
  out.push(...await q.execute());
  const seen = new Set(out.map((r) => r.id));
  const rest = ids.filter((id) => !seen.has(id));
  for (let i = 0; i < rest.length; i += CHUNK) {
    let c = db.selectFrom('ports').select(PORT_COLUMNS).where('id', 'in', rest.slice(i, i + CHUNK));
    if (lock) c = c.forUpdate();
    out.push(...await c.execute());
  }
  return out;
}

function portChanges(rows: PortRowState[], plan: HostPlan, host: string): Map<string, PortState> {
  const bindings = new Map(plan.bindings.map((b) => [b.port_id, b]));
  const out = new Map<string, PortState>();
  for (const row of rows) {
    const want = wantedPort(row, bindings.get(row.id), host);
    if (want && !samePort(row, want)) out.set(row.id, want);
  }
  return out;
}

/**
 * Floating IPs whose status this host decides: those of routers it serves,
 * and disassociated ones (no router serves them, so any network node may say
 * DOWN). Others belong to another network node's routers.
 */
async function fipChanges(db: Db | Tx, plan: HostPlan, lock: boolean): Promise<Map<string, string>> {
  const served = new Set(plan.floatingips);
  const routers = new Set(plan.routers);
  let q = db.selectFrom('floatingips').select(['id', 'status', 'router_id']);
  if (lock) q = q.forUpdate();
  const out = new Map<string, string>();
  for (const f of await q.execute()) {
    if (f.router_id !== null && !routers.has(f.router_id)) continue;
    const want = served.has(f.id) ? 'ACTIVE' : 'DOWN';
    if (f.status !== want) out.set(f.id, want);
  }
  return out;
}

async function writePorts(tx: Tx, store: Store, changes: Map<string, PortState>): Promise<void> {
  for (const [id, state] of changes) {
    // The revision is bumped in SQL: a concurrent API update may have bumped it since we read.
    await tx.updateTable('ports')
      .set((eb) => ({ ...state, revision_number: eb('revision_number', '+', 1), updated_at: now() }))
      .where('id', '=', id).execute();
    await recordResourceChange(tx, store, 'ports', 'port', id, 'update');
  }
}

async function writeFloatingIps(tx: Tx, store: Store, changes: Map<string, string>): Promise<void> {
  for (const [id, status] of changes) {
    await tx.updateTable('floatingips')
      .set((eb) => ({ status, revision_number: eb('revision_number', '+', 1), updated_at: now() }))
      .where('id', '=', id).execute();
    await recordResourceChange(tx, store, 'floatingips', 'floatingip', id, 'update');
  }
}

/** Writes what changed since the last report; returns what was written (nothing, most passes). */
export async function reportStatus(store: Store, plan: HostPlan, opts: ReportOptions): Promise<ReportResult> {
  const ids = plan.bindings.map((b) => b.port_id);
  const ports = portChanges(await readPorts(store.db, opts.host, ids, false), plan, opts.host);
  const fips = opts.networkNode ? await fipChanges(store.db, plan, false) : new Map<string, string>();
  if (ports.size === 0 && fips.size === 0) return { ports: [], floatingips: [] };

  const lock = store.dialect === 'postgres';
  return store.transaction(async (tx) => {
    // Again under lock: what changed meanwhile (a port deleted, a FIP moved) is decided on fresh rows.
    const portsNow = portChanges(await readPorts(tx, opts.host, [...ports.keys()], lock), plan, opts.host);
    const fipsNow = opts.networkNode ? await fipChanges(tx, plan, lock) : new Map<string, string>();
    await writePorts(tx, store, portsNow);
    await writeFloatingIps(tx, store, fipsNow);
    return { ports: [...portsNow.keys()], floatingips: [...fipsNow.keys()] };
  });
}
