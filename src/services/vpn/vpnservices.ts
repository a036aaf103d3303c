// VPN services: a router (with an external gateway: the tunnel's local end)
// and, in the legacy form, one of its subnets. external_v4_ip/external_v6_ip
// are read from the gateway port when shown, so they follow gateway changes.
import type { Body } from '../../resources/attributes.ts';
import { vpnServiceDef } from '../../resources/vpn.ts';
import type { AuthContext } from '../../identity/context.ts';
import { owningProject } from '../../identity/policy.ts';
import { ResourceNotFound, RouterIsNotExternal, SubnetIsNotConnectedToRouter, VPNServiceInUse } from '../../errors.ts';
import type { Db, Store, Tx } from '../../store/database.ts';
import { ResourceService } from '../resource-service.ts';
import { bumped, newId, now, type Row, type Wire } from '../resource-store.ts';
import { enforceQuota } from '../quota-limits.ts';
import { routerModel } from '../routers.ts';
import { subnetModel } from '../subnets.ts';
import { parseIp } from '../ipam.ts';
import { ownerModel, referenced, transition } from './common.ts';

/** The gateway addresses of routers, by router id, in one query. */
export async function gatewayIps(db: Db | Tx, routerIds: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (routerIds.length === 0) return out;
  const rows = await db.selectFrom('routers as r').innerJoin('ip_allocations as a', 'a.port_id', 'r.gw_port_id')
    .select(['r.id', 'a.ip_address']).where('r.id', 'in', routerIds).execute();
  for (const r of rows) out.set(r.id, [...(out.get(r.id) ?? []), r.ip_address]);
  return out;
}

/** The first gateway address of each version (what neutron-vpnaas stores as external_v4_ip / external_v6_ip). */
export function externalIps(ips: string[]): { external_v4_ip: string | null; external_v6_ip: string | null } {
  const sorted = [...ips].sort();
  return {
    external_v4_ip: sorted.find((ip) => parseIp(ip)?.version === 4) ?? null,
    external_v6_ip: sorted.find((ip) => parseIp(ip)?.version === 6) ?? null,
  };
}

export const vpnServiceModel = ownerModel(vpnServiceDef, {
  async expand(db, rows) {
    const gw = await gatewayIps(db, [...new Set(rows.map((r) => r.router_id as string))]);
    return new Map(rows.map((r) => [r.id as string, { ...externalIps(gw.get(r.router_id) ?? []), flavor_id: null } as Wire]));
  },
});

/** _check_subnet_id: some port of the router has an address on the subnet. */
export async function subnetOnRouter(tx: Db | Tx, routerId: string, subnetId: string): Promise<boolean> {
  const hit = await tx.selectFrom('ports as p').innerJoin('ip_allocations as a', 'a.port_id', 'p.id').select('p.id')
    .where('p.device_id', '=', routerId).where('a.subnet_id', '=', subnetId).limit(1).executeTakeFirst();
  return Boolean(hit);
}

export class VpnServiceService extends ResourceService {
  constructor(store: Store) {
    super(store, vpnServiceModel);
  }

  protected async createOne(tx: Tx, ctx: AuthContext, body: Body): Promise<string> {
    const projectId = owningProject(ctx, body);
    if (body.flavor_id) throw new ResourceNotFound('flavor', body.flavor_id as string);
    await enforceQuota(tx, 'vpnservice', projectId);
    const router = await referenced(tx, this.store.dialect, routerModel, ctx, body.router_id as string);
    if (!router.gw_port_id) throw new RouterIsNotExternal(router.id);
    const subnetId = body.subnet_id as string | null;
    if (subnetId) {
      await referenced(tx, this.store.dialect, subnetModel, ctx, subnetId);
      if (!(await subnetOnRouter(tx, router.id, subnetId))) throw new SubnetIsNotConnectedToRouter(subnetId, router.id);
    }
    const id = newId();
    const ts = now();
    await tx.insertInto('vpn_services').values({
      id, project_id: projectId, name: body.name as string, description: body.description as string,
      router_id: router.id, subnet_id: subnetId, admin_state_up: body.admin_state_up ? 1 : 0, status: 'PENDING_CREATE',
      created_at: ts, updated_at: ts, revision_number: 1,
    }).execute();
    return id;
  }

  /** Only a change the data plane sees (admin_state_up) goes back to pending; a new name does not. */
  protected async updateOne(tx: Tx, _ctx: AuthContext, row: Row, body: Body): Promise<void> {
    const set: Record<string, unknown> = {};
    for (const k of ['name', 'description'] as const) if (k in body) set[k] = body[k];
    const status = transition(row.id, row.status, { kind: 'update' });
    if ('admin_state_up' in body && Boolean(body.admin_state_up) !== Boolean(row.admin_state_up)) {
      set.admin_state_up = body.admin_state_up ? 1 : 0;
      set.status = status;
    }
    await tx.updateTable('vpn_services').set({ ...set, ...bumped(row) }).where('id', '=', row.id).execute();
  }

  protected async deleteOne(tx: Tx, _ctx: AuthContext, row: Row): Promise<void> {
    const conn = await tx.selectFrom('vpn_ipsec_site_connections').select('id').where('vpnservice_id', '=', row.id).limit(1).executeTakeFirst();
    if (conn) throw new VPNServiceInUse(row.id);
    await tx.deleteFrom('vpn_services').where('id', '=', row.id).execute();
  }
}
