// Address groups: named sets of CIDRs that security group rules can name as
// their remote (remote_address_group_id). Members change through the
// add_addresses / remove_addresses actions; agents update their nft sets
// element by element from the feed.
import { formatNet, parseNet } from './ipam.ts';
import { addressGroupDef } from '../resources/security-group.ts';
import { convertAttribute, type Body } from '../resources/attributes.ts';
import type { AuthContext } from '../identity/context.ts';
import { authorizeWrite, owningProject } from '../identity/policy.ts';
import type { Store, Tx } from '../store/database.ts';
import { Conflict, HTTPBadRequest } from '../errors.ts';
import { ResourceService } from './resource-service.ts';
import { bumped, checkRevision, loadForWrite, newId, now, type ResourceModel, type Row, type Wire } from './resource-store.ts';

/** A CIDR in canonical network form ("10.0.0.5" → "10.0.0.5/32"); the converter has checked it. Pure. */
export function normalizeCidr(value: string): string {
  return formatNet(parseNet(value)!);
}

export class AddressGroupInUse extends Conflict {
  constructor(id: string) { super(`Address group ${id} is in use.`); }
}

export const addressGroupModel: ResourceModel = {
  def: addressGroupDef,
  scope: (ctx, eb) => eb('r.project_id', '=', ctx.projectId),
  async expand(db, rows) {
    const ids = rows.map((r) => r.id);
    const out = new Map<string, Wire>(ids.map((id) => [id, { addresses: [] as string[] }]));
    const members = await db.selectFrom('address_group_addresses').selectAll()
      .where('address_group_id', 'in', ids).orderBy('address').execute();
    for (const m of members) (out.get(m.address_group_id)!.addresses as string[]).push(m.address);
    return out;
  },
};

export class AddressGroupService extends ResourceService {
  constructor(store: Store) {
    super(store, addressGroupModel);
  }

  protected async createOne(tx: Tx, ctx: AuthContext, body: Body): Promise<string> {
    const id = newId();
    const ts = now();
    await tx.insertInto('address_groups').values({
      id, project_id: owningProject(ctx, body), name: body.name as string, description: body.description as string,
      created_at: ts, updated_at: ts, revision_number: 0,
    }).execute();
    await this.addMembers(tx, id, body.addresses as string[]);
    return id;
  }

  protected async updateOne(tx: Tx, _ctx: AuthContext, row: Row, body: Body): Promise<void> {
    const set: Record<string, unknown> = {};
    if ('name' in body) set.name = body.name;
    if ('description' in body) set.description = body.description;
    await tx.updateTable('address_groups').set({ ...set, ...bumped(row) }).where('id', '=', row.id).execute();
  }

  protected async deleteOne(tx: Tx, _ctx: AuthContext, row: Row): Promise<void> {
    const used = await tx.selectFrom('security_group_rules').select('id').where('remote_address_group_id', '=', row.id).limit(1).executeTakeFirst();
    if (used) throw new AddressGroupInUse(row.id);
    await tx.deleteFrom('address_groups').where('id', '=', row.id).execute();
  }

  private async addMembers(tx: Tx, id: string, addresses: string[]): Promise<void> {
    const cidrs = [...new Set(addresses.map(normalizeCidr))];
    if (cidrs.length === 0) return;
    await tx.insertInto('address_group_addresses').values(cidrs.map((address) => ({ address_group_id: id, address })))
      .onConflict((oc) => oc.doNothing()).execute();
  }

  /** add_addresses / remove_addresses: one transaction, one revision, one feed row. */
  async changeAddresses(ctx: AuthContext, id: string, raw: unknown, action: 'add' | 'remove', ifMatch?: string): Promise<Wire> {
    const body = raw as Body | null;
    if (!body || typeof body !== 'object' || !Array.isArray(body.addresses)) {
      throw new HTTPBadRequest("Unable to find 'addresses' in request body");
    }
    const addresses = convertAttribute('addresses', addressGroupDef.attributes.addresses, body.addresses) as string[];
    authorizeWrite(ctx, addressGroupDef, 'update');
    await this.store.transaction(async (tx) => {
      const row = await loadForWrite(tx, this.store.dialect, this.model, ctx, id, 'update');
      checkRevision(row, ifMatch);
      if (action === 'add') {
        await this.addMembers(tx, id, addresses);
      } else {
        const cidrs = addresses.map(normalizeCidr);
        const present = await tx.selectFrom('address_group_addresses').select('address')
          .where('address_group_id', '=', id).where('address', 'in', cidrs).execute();
        const missing = cidrs.filter((c) => !present.some((p) => p.address === c));
        if (missing.length) throw new HTTPBadRequest(`Address group ${id} does not contain ${missing.join(', ')}`);
        await tx.deleteFrom('address_group_addresses').where('address_group_id', '=', id).where('address', 'in', cidrs).execute();
      }
      await tx.updateTable('address_groups').set(bumped(row)).where('id', '=', id).execute();
      await this.changed(tx, id, 'update');
    });
    return this.get(ctx, id);
  }
}
