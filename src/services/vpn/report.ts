// Status reports from the agent: each connection's tunnel state, folded into
// the status machine, and each affected VPN service recomputed from its
// connections. Only what actually changed is written, with a new revision and
// a change-feed row, so a report every few seconds costs no writes and wakes
// no one when nothing moved.
import type { Store, Tx } from '../../store/database.ts';
import { recordResourceChange } from '../resource-service.ts';
import { now } from '../resource-store.ts';
import { REPORTED_STATUSES, nextStatus, serviceStatus, type ReportedStatus, type VpnStatus } from './status.ts';

export interface IpsecStatusReport {
  /** connection id → what the agent sees of its tunnel. Unknown ids are ignored (deleted meanwhile). */
  connections: Record<string, ReportedStatus>;
}

export interface IpsecStatusChanges {
  connections: string[];
  vpnservices: string[];
}

async function setStatus(tx: Tx, store: Store, table: 'vpn_ipsec_site_connections' | 'vpn_services', type: string, id: string, status: string) {
  await tx.updateTable(table)
    .set((eb) => ({ status, revision_number: eb('revision_number', '+', 1), updated_at: now() }))
    .where('id', '=', id).execute();
  await recordResourceChange(tx, store, table, type, id, 'update');
}

/** Applies one agent report in one transaction; returns the ids whose status changed. */
export async function reportIpsecStatus(store: Store, report: IpsecStatusReport): Promise<IpsecStatusChanges> {
  const entries = Object.entries(report.connections).filter(([, s]) => REPORTED_STATUSES.includes(s));
  if (entries.length === 0) return { connections: [], vpnservices: [] };
  return store.transaction(async (tx) => {
    const ids = entries.map(([id]) => id);
    let q = tx.selectFrom('vpn_ipsec_site_connections').select(['id', 'status', 'vpnservice_id']).where('id', 'in', ids).orderBy('id');
    if (store.dialect === 'postgres') q = q.forUpdate();
    const rows = await q.execute();
    const wanted = new Map(entries);
    const changed: string[] = [];
    for (const row of rows) {
      const next = nextStatus(row.status as VpnStatus, { kind: 'report', status: wanted.get(row.id)! });
      if (next === row.status) continue;
      await setStatus(tx, store, 'vpn_ipsec_site_connections', 'ipsec_site_connection', row.id, next);
      changed.push(row.id);
    }
    const serviceIds = [...new Set(rows.map((r) => r.vpnservice_id))].sort();
    const services = serviceIds.length
      ? await tx.selectFrom('vpn_services').select(['id', 'status']).where('id', 'in', serviceIds).execute() : [];
    const conns = serviceIds.length
      ? await tx.selectFrom('vpn_ipsec_site_connections').select(['vpnservice_id', 'status']).where('vpnservice_id', 'in', serviceIds).execute() : [];
    const servicesChanged: string[] = [];
    for (const s of services) {
      const next = serviceStatus(conns.filter((c) => c.vpnservice_id === s.id).map((c) => c.status as VpnStatus));
      if (next === s.status) continue;
      await setStatus(tx, store, 'vpn_services', 'vpnservice', s.id, next);
      servicesChanged.push(s.id);
    }
    return { connections: changed, vpnservices: servicesChanged };
  });
}
