// What the VPN services share: owner-only visibility (neutron-vpnaas's
// default policy: admin_or_owner for every VPN resource) and reading a
// referenced resource for a write.
import type { ResourceDef } from '../../resources/attributes.ts';
import type { AuthContext } from '../../identity/context.ts';
import { ResourceNotFound, VPNStateInvalidToUpdate } from '../../errors.ts';
import type { Dialect, Tx } from '../../store/database.ts';
import { findVisibleRow, type ResourceModel, type Row } from '../resource-store.ts';
import { InvalidVpnTransition, nextStatus, type VpnEvent, type VpnStatus } from './status.ts';

export function ownerModel(def: ResourceDef, extra: Omit<ResourceModel, 'def' | 'scope'> = {}): ResourceModel {
  return { def, scope: (ctx, eb) => eb('r.project_id', '=', ctx.projectId), ...extra };
}

/**
 * A resource a write refers to (a connection's service or policies), visible
 * to the caller or <Resource>NotFound. On PostgreSQL it is share-locked, so a
 * concurrent delete of it waits and then sees the new reference (InUse)
 * instead of failing on the foreign key.
 */
export async function referenced(tx: Tx, dialect: Dialect, model: ResourceModel, ctx: AuthContext, id: string): Promise<Row> {
  const row = await findVisibleRow(tx, model, ctx, id);
  if (!row) throw new ResourceNotFound(model.def.name, id);
  if (dialect === 'postgres') {
    const locked = await (tx as any).selectFrom(model.def.table).select('id').where('id', '=', id).forShare().executeTakeFirst();
    if (!locked) throw new ResourceNotFound(model.def.name, id);
  }
  return row;
}

/** The status machine's answer, or Neutron's VPNStateInvalidToUpdate for a refused event. */
export function transition(id: string, from: string, event: VpnEvent): VpnStatus {
  try {
    return nextStatus(from as VpnStatus, event);
  } catch (e) {
    if (e instanceof InvalidVpnTransition) throw new VPNStateInvalidToUpdate(id, from);
    throw e;
  }
}
