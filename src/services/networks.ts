// Networks: the L2 domain everything else hangs off.
import { type Body } from '../resources/attributes.ts';
import { networkDef, type NetworkType } from '../resources/network.ts';
import type { AuthContext } from '../identity/context.ts';
import { owningProject } from '../identity/policy.ts';
import type { Store, Tx } from '../store/database.ts';
import { Conflict, InvalidInput, NetworkInUse } from '../errors.ts';
import { ResourceService } from './resource-service.ts';
import { bumped, newId, now, type ResourceModel, type Row, type Wire } from './resource-store.ts';
import { enforceQuota } from './quota-limits.ts';
// Ports with these owners go away with the network (Neutron's AUTO_DELETE_PORT_OWNERS).
import { AUTO_DELETE_PORT_OWNERS } from './ipam.ts';
import { allocateSegment, mtuFor, validateProviderSegment, type SegmentConfig, type Segment } from './segments.ts';

/** Owned, shared and external networks are visible; Neutron's get_network rule. */
export const networkModel: ResourceModel = {
  def: networkDef,
  scope: (ctx, eb) => eb.or([
    eb('r.project_id', '=', ctx.projectId),
    eb('r.shared', '=', 1),
    eb('r.router_external', '=', 1),
  ]),
  async expand(db, rows) {
    const ids = rows.map((r) => r.id);
    const subnets = await db.selectFrom('subnets').select(['id', 'network_id'])
      .where('network_id', 'in', ids).orderBy('created_at').orderBy('id').execute();
    const out = new Map<string, Wire>(ids.map((id) => [id, {
      subnets: [] as string[], availability_zones: [], ipv4_address_scope: null, ipv6_address_scope: null,
    }]));
    for (const s of subnets) (out.get(s.network_id)!.subnets as string[]).push(s.id);
    return out;
  },
};

export class NetworkService extends ResourceService {
  constructor(store: Store, private readonly segments: SegmentConfig) {
    super(store, networkModel);
  }

  protected async createOne(tx: Tx, ctx: AuthContext, body: Body): Promise<string> {
    const projectId = owningProject(ctx, body);
    await enforceQuota(tx, 'network', projectId);
    const id = newId();
    const provider = body['provider:network_type'] !== undefined;
    const wanted: Segment = provider
      ? validateProviderSegment(this.segments, {
        network_type: body['provider:network_type'] as NetworkType,
        physical_network: body['provider:physical_network'] as string | null | undefined,
        segmentation_id: body['provider:segmentation_id'] as number | null | undefined,
      })
      : { network_type: this.segments.tenantNetworkType, physical_network: null, segmentation_id: null };
    if (!provider && (body['provider:physical_network'] !== undefined || body['provider:segmentation_id'] !== undefined)) {
      throw new InvalidInput('provider:network_type required');
    }
    const maxMtu = mtuFor(this.segments, wanted.network_type);
    const mtu = (body.mtu as number | undefined) ?? maxMtu;
    if (mtu > maxMtu) throw new InvalidInput(`Requested MTU is too big, maximum is ${maxMtu}`);
    const ts = now();
    // Insert first so the segment row can reference the network.
    await tx.insertInto('networks').values({
      id, project_id: projectId,
      name: body.name as string, description: body.description as string,
      created_at: ts, updated_at: ts, revision_number: 1,
      admin_state_up: body.admin_state_up ? 1 : 0, status: 'ACTIVE',
      shared: body.shared ? 1 : 0, router_external: body['router:external'] ? 1 : 0,
      is_default: body.is_default ? 1 : 0, mtu,
      port_security_enabled: body.port_security_enabled ? 1 : 0,
      network_type: wanted.network_type, physical_network: wanted.physical_network, segmentation_id: null,
      availability_zone_hints: JSON.stringify(body.availability_zone_hints ?? []),
    }).execute();
    const seg = await allocateSegment(tx, this.segments, id, wanted);
    if (seg.segmentation_id !== null) {
      await tx.updateTable('networks').set({ segmentation_id: seg.segmentation_id }).where('id', '=', id).execute();
    }
    return id;
  }

  protected async updateOne(tx: Tx, _ctx: AuthContext, row: Row, body: Body): Promise<void> {
    const set: Record<string, unknown> = {};
    if ('name' in body) set.name = body.name;
    if ('description' in body) set.description = body.description;
    if ('admin_state_up' in body) set.admin_state_up = body.admin_state_up ? 1 : 0;
    if ('port_security_enabled' in body) set.port_security_enabled = body.port_security_enabled ? 1 : 0;
    if ('router:external' in body) set.router_external = body['router:external'] ? 1 : 0;
    if ('is_default' in body) set.is_default = body.is_default ? 1 : 0;
    if ('mtu' in body) {
      const max = mtuFor(this.segments, row.network_type as NetworkType);
      if ((body.mtu as number) > max) throw new InvalidInput(`Requested MTU is too big, maximum is ${max}`);
      set.mtu = body.mtu;
    }
    if ('shared' in body) {
      if (!body.shared && row.shared) await this.assertNotUsedByOthers(tx, row);
      set.shared = body.shared ? 1 : 0;
    }
    await tx.updateTable('networks').set({ ...set, ...bumped(row) }).where('id', '=', row.id).execute();
  }

  /** A network other projects have ports on cannot stop being shared. */
  private async assertNotUsedByOthers(tx: Tx, row: Row): Promise<void> {
    const other = await tx.selectFrom('ports').select('id')
      .where('network_id', '=', row.id).where('project_id', '!=', row.project_id).limit(1).executeTakeFirst();
    if (other) {
      throw new InvalidSharedSetting(row.id);
    }
  }

  protected async deleteOne(tx: Tx, _ctx: AuthContext, row: Row): Promise<void> {
    const ports = await tx.selectFrom('ports').select(['id', 'device_owner']).where('network_id', '=', row.id).execute();
    const blocking = ports.filter((p) => !AUTO_DELETE_PORT_OWNERS.has(p.device_owner));
    if (blocking.length) throw new NetworkInUse(row.id, blocking.map((p) => p.id));
    // Ports cascade to their IP allocations.
    await tx.deleteFrom('ports').where('network_id', '=', row.id).execute();
    const subnetIds = (await tx.selectFrom('subnets').select('id').where('network_id', '=', row.id).execute()).map((s) => s.id);
    if (subnetIds.length) {
      await tx.deleteFrom('tags').where('resource_id', 'in', subnetIds).execute();
      await tx.deleteFrom('subnets').where('id', 'in', subnetIds).execute();
    }
    await tx.deleteFrom('segment_allocations').where('network_id', '=', row.id).execute();
    await tx.deleteFrom('networks').where('id', '=', row.id).execute();
  }
}

export class InvalidSharedSetting extends Conflict {
  constructor(networkId: string) {
    super(`Unable to reconfigure sharing settings for network ${networkId}. Multiple tenants are using it.`);
  }
}
