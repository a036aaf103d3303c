// Endpoint groups (vpn-endpoint-groups): a typed list of local subnets or
// peer CIDRs that connections refer to instead of the legacy subnet_id /
// peer_cidrs. Type and endpoints are fixed once created (allow_put False),
// and a group in use cannot be deleted.
import type { Body } from '../../resources/attributes.ts';
import { endpointGroupDef, type EndpointType } from '../../resources/vpn.ts';
import type { AuthContext } from '../../identity/context.ts';
import { owningProject } from '../../identity/policy.ts';
import { EndpointGroupInUse, NonExistingSubnetInEndpointGroup } from '../../errors.ts';
import type { Store, Tx } from '../../store/database.ts';
import { ResourceService } from '../resource-service.ts';
import { bumped, findVisibleRow, newId, now, type Row } from '../resource-store.ts';
import { enforceQuota } from '../quota-limits.ts';
import { subnetModel } from '../subnets.ts';
import { checkEndpoints } from './rules.ts';
import { ownerModel } from './common.ts';

export const endpointGroupModel = ownerModel(endpointGroupDef);

export class EndpointGroupService extends ResourceService {
  constructor(store: Store) {
    super(store, endpointGroupModel);
  }

  protected async createOne(tx: Tx, ctx: AuthContext, body: Body): Promise<string> {
    const projectId = owningProject(ctx, body);
    const type = body.type as EndpointType;
    const endpoints = checkEndpoints(body.name as string, type, body.endpoints as string[]);
    if (type === 'subnet') {
      // _validate_subnets: each one must exist for the caller.
      for (const s of endpoints) {
        if (!(await findVisibleRow(tx, subnetModel, ctx, s))) throw new NonExistingSubnetInEndpointGroup(s);
      }
    }
    await enforceQuota(tx, 'endpoint_group', projectId);
    const id = newId();
    const ts = now();
    await tx.insertInto('vpn_endpoint_groups').values({
      id, project_id: projectId, name: body.name as string, description: body.description as string,
      type, endpoints: JSON.stringify(endpoints), created_at: ts, updated_at: ts, revision_number: 1,
    }).execute();
    return id;
  }

  protected async updateOne(tx: Tx, _ctx: AuthContext, row: Row, body: Body): Promise<void> {
    const set: Record<string, unknown> = {};
    for (const k of ['name', 'description'] as const) if (k in body) set[k] = body[k];
    await tx.updateTable('vpn_endpoint_groups').set({ ...set, ...bumped(row) }).where('id', '=', row.id).execute();
  }

  protected async deleteOne(tx: Tx, _ctx: AuthContext, row: Row): Promise<void> {
    const used = await tx.selectFrom('vpn_ipsec_site_connections').select('id')
      .where((eb) => eb.or([eb('local_ep_group_id', '=', row.id), eb('peer_ep_group_id', '=', row.id)])).limit(1).executeTakeFirst();
    if (used) throw new EndpointGroupInUse(row.id);
    await tx.deleteFrom('vpn_endpoint_groups').where('id', '=', row.id).execute();
  }
}
