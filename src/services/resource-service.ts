// The shape every Neutron resource service shares, so the HTTP layer can serve
// any of them the same way. Services take and return wire-shaped dicts (like
// Neutron's plugin API); each create, update and delete is one transaction,
// and a bulk create is one transaction for the whole list (all-or-nothing).
import { parseBody, type Body } from '../resources/attributes.ts';
import { authorizeWrite } from '../identity/policy.ts';
import type { AuthContext } from '../identity/context.ts';
import type { Store, Tx } from '../store/database.ts';
import {
  addTag, bumpRevision, checkRevision, findVisibleRow, getResource, listResources, loadForWrite, loadTags,
  removeTag, renderRows, replaceTags, type ListQuery, type Page, type ResourceModel, type Row, type Wire,
} from './resource-store.ts';
import { ResourceNotFound, TagNotFound } from '../errors.ts';
import { recordChange, type ChangeOp } from './change-feed.ts';

export abstract class ResourceService {
  constructor(readonly store: Store, readonly model: ResourceModel) {}

  get def() {
    return this.model.def;
  }

  /** Inserts one validated resource inside tx; returns its id. */
  protected abstract createOne(tx: Tx, ctx: AuthContext, body: Body): Promise<string>;
  /** Applies a validated update to a locked, authorized row. */
  protected abstract updateOne(tx: Tx, ctx: AuthContext, row: Row, body: Body): Promise<void>;
  /** Deletes a locked, authorized row and what hangs off it. */
  protected abstract deleteOne(tx: Tx, ctx: AuthContext, row: Row): Promise<void>;

  /**
   * Policy for one write request, before anything is read. Resources with
   * nested admin-only attributes (a router's external_gateway_info) override it.
   */
  protected authorize(ctx: AuthContext, action: 'create' | 'update' | 'delete', raw: Body = {}): void {
    authorizeWrite(ctx, this.def, action, raw);
  }

  /**
   * The row to change, locked, with the owner check. Resources whose network's
   * owner may also change them (subnets, ports) override it.
   */
  protected lockForWrite(tx: Tx, ctx: AuthContext, id: string, action: 'update' | 'delete'): Promise<Row> {
    return loadForWrite(tx, this.store.dialect, this.model, ctx, id, action);
  }

  list(ctx: AuthContext, query: ListQuery): Promise<Page> {
    return listResources(this.store.db, this.model, ctx, query);
  }

  get(ctx: AuthContext, id: string): Promise<Wire> {
    return getResource(this.store.db, this.model, ctx, id);
  }

  async create(ctx: AuthContext, raw: unknown): Promise<Wire> {
    return (await this.createBulk(ctx, [raw]))[0];
  }

  async createBulk(ctx: AuthContext, raws: unknown[]): Promise<Wire[]> {
    const bodies = raws.map((raw) => {
      const body = parseBody(this.def, raw, 'create');
      this.authorize(ctx, 'create', raw as Body);
      return body;
    });
    const ids = await this.store.transaction(async (tx) => {
      const out: string[] = [];
      for (const body of bodies) {
        const id = await this.createOne(tx, ctx, body);
        await this.changed(tx, id, 'create');
        out.push(id);
      }
      return out;
    });
    return this.renderIds(ctx, ids);
  }

  /**
   * Creates one resource inside the caller's transaction, validated like an API
   * request but without the API's policy check: for services that compose
   * others (a router creating its interface port). ctx decides the owner.
   */
  async createWithin(tx: Tx, ctx: AuthContext, raw: Body): Promise<string> {
    const id = await this.createOne(tx, ctx, parseBody(this.def, raw, 'create'));
    await this.changed(tx, id, 'create');
    return id;
  }

  /** Deletes one resource inside the caller's transaction, with the resource's own rules. */
  async deleteWithin(tx: Tx, ctx: AuthContext, id: string): Promise<void> {
    const row = await (tx as any).selectFrom(this.def.table).selectAll().where('id', '=', id).executeTakeFirst() as Row | undefined;
    if (!row) throw new ResourceNotFound(this.def.name, id);
    await this.deleteOne(tx, ctx, row);
    await tx.deleteFrom('tags').where('resource_id', '=', id).execute();
    await this.changed(tx, id, 'delete', row);
  }

  /** Renders rows this caller may see, by id, in the given order (after a commit). */
  async render(ctx: AuthContext, ids: string[]): Promise<Wire[]> {
    return this.renderIds(ctx, ids);
  }

  async update(ctx: AuthContext, id: string, raw: unknown, ifMatch?: string): Promise<Wire> {
    const body = parseBody(this.def, raw, 'update');
    this.authorize(ctx, 'update', raw as Body);
    await this.store.transaction(async (tx) => {
      const row = await this.lockForWrite(tx, ctx, id, 'update');
      checkRevision(row, ifMatch);
      await this.updateOne(tx, ctx, row, body);
      await this.changed(tx, id, 'update');
    });
    return (await this.renderIds(ctx, [id]))[0];
  }

  async delete(ctx: AuthContext, id: string, ifMatch?: string): Promise<void> {
    this.authorize(ctx, 'delete');
    await this.store.transaction(async (tx) => {
      const row = await this.lockForWrite(tx, ctx, id, 'delete');
      checkRevision(row, ifMatch);
      await this.deleteOne(tx, ctx, row);
      await tx.deleteFrom('tags').where('resource_id', '=', id).execute();
      await this.changed(tx, id, 'delete', row);
    });
  }

  /**
   * Appends this resource's change to the feed, in the caller's transaction.
   * Services call it for other resources their change affects (a router
   * interface changes a port) through recordResourceChange.
   */
  protected async changed(tx: Tx, id: string, op: ChangeOp, deletedRow?: Row): Promise<void> {
    await recordResourceChange(tx, this.store, this.def.table, this.def.name, id, op, deletedRow);
  }

  /** Renders freshly written rows; admin view is narrowed to the caller's by renderRows. */
  protected async renderIds(ctx: AuthContext, ids: string[]): Promise<Wire[]> {
    const rows = await (this.store.db as any).selectFrom(`${this.def.table} as r`).selectAll('r')
      .where('r.id', 'in', ids).execute() as Row[];
    const byId = new Map(rows.map((r) => [r.id, r]));
    return renderRows(this.store.db, this.model, ctx, ids.map((id) => byId.get(id)!));
  }

  // ---- tags (standard-attr-tag): every change bumps the revision, as in Neutron

  async getTags(ctx: AuthContext, id: string): Promise<string[]> {
    if (!(await findVisibleRow(this.store.db, this.model, ctx, id))) throw new ResourceNotFound(this.def.name, id);
    return (await loadTags(this.store.db, this.def.name, [id])).get(id) ?? [];
  }

  async hasTag(ctx: AuthContext, id: string, tag: string): Promise<void> {
    if (!(await this.getTags(ctx, id)).includes(tag)) throw new TagNotFound(this.def.name, id, tag);
  }

  async changeTags(ctx: AuthContext, id: string, change: (tx: Tx) => Promise<void>, ifMatch?: string): Promise<string[]> {
    this.authorize(ctx, 'update');
    await this.store.transaction(async (tx) => {
      const row = await this.lockForWrite(tx, ctx, id, 'update');
      checkRevision(row, ifMatch);
      await change(tx);
      await bumpRevision(tx, this.def.table, id);
      await this.changed(tx, id, 'update');
    });
    return (await loadTags(this.store.db, this.def.name, [id])).get(id) ?? [];
  }

  replaceTags(ctx: AuthContext, id: string, tags: string[], ifMatch?: string) {
    return this.changeTags(ctx, id, (tx) => replaceTags(tx, this.def.name, id, tags), ifMatch);
  }
  addTag(ctx: AuthContext, id: string, tag: string, ifMatch?: string) {
    return this.changeTags(ctx, id, (tx) => addTag(tx, this.def.name, id, tag), ifMatch);
  }
  removeTag(ctx: AuthContext, id: string, tag: string, ifMatch?: string) {
    return this.changeTags(ctx, id, (tx) => removeTag(tx, this.def.name, id, tag), ifMatch);
  }
  removeAllTags(ctx: AuthContext, id: string, ifMatch?: string) {
    return this.changeTags(ctx, id, (tx) => replaceTags(tx, this.def.name, id, []), ifMatch);
  }
}

/** Records a change of any resource row (read back for its project and revision). */
export async function recordResourceChange(
  tx: Tx, store: Store, table: string, resourceType: string, id: string, op: ChangeOp, knownRow?: Row,
): Promise<void> {
  const row = knownRow ?? await (tx as any).selectFrom(table).select(['project_id', 'revision_number'])
    .where('id', '=', id).executeTakeFirst() as Row | undefined;
  if (!row) return;
  recordChange(tx, {
    resource_type: resourceType, resource_id: id, project_id: row.project_id, op, revision_number: row.revision_number,
  });
}
