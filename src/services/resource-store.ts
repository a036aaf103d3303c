// The generic half of every resource service: reading (visibility, filters,
// tags filters, sorting, marker pagination, rendering), and the standard
// attribute bookkeeping of writes (timestamps, revision numbers, If-Match,
// tags). Each resource service supplies a ResourceModel and its own rules.
import { sql, type Expression, type ExpressionBuilder, type Kysely, type SqlBool } from 'kysely';
import crypto from 'node:crypto';
import {
  HTTPBadRequest, PolicyNotAuthorized, ResourceNotFound, RevisionNumberConstraintFailed, TagNotFound,
} from '../errors.ts';
import {
  columnOf, convertAttribute, decode, isFilterable, isSortable, type ResourceDef,
} from '../resources/attributes.ts';
import type { AuthContext } from '../identity/context.ts';
import { visibleAttributeNames } from '../identity/policy.ts';
import type { Db, Dialect, Store, Tx } from '../store/database.ts';

export type Row = Record<string, any>;
export type Wire = Record<string, unknown>;
type AnyDb = Kysely<any>;
type Eb = ExpressionBuilder<any, any>;

export interface ResourceModel {
  def: ResourceDef;
  /**
   * What a non-admin caller may see, as SQL over the resource's table
   * (aliased `r`). Admins see everything.
   */
  scope(ctx: AuthContext, eb: Eb): Expression<SqlBool>;
  /** Computed attributes for a page of rows, fetched in one query per attribute. */
  expand?(db: Db | Tx, rows: Row[], ctx: AuthContext): Promise<Map<string, Wire>>;
  /** Filters on computed attributes (e.g. ports' fixed_ips), as SQL. */
  filters?: Record<string, (values: string[], eb: Eb) => Expression<SqlBool>>;
}

export interface SortKey { key: string; dir: 'asc' | 'desc' }

export interface ListQuery {
  filters: Record<string, string[]>;
  fields?: string[];
  sort: SortKey[];
  limit?: number;
  marker?: string;
  pageReverse?: boolean;
}

export const emptyQuery = (): ListQuery => ({ filters: {}, sort: [] });

/** Neutron's timestamp format: second precision, Z. */
export function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function newId(): string {
  return crypto.randomUUID();
}

const TAG_FILTERS = ['tags', 'tags-any', 'not-tags', 'not-tags-any'];
const PAGING_PARAMS = new Set(['fields', 'sort_key', 'sort_dir', 'limit', 'marker', 'page_reverse']);

// ------------------------------------------------------------------ reading

function whereFilters(model: ResourceModel, query: ListQuery, eb: Eb): Expression<SqlBool>[] {
  const { def } = model;
  const conds: Expression<SqlBool>[] = [];
  for (const [name, rawValues] of Object.entries(query.filters)) {
    if (PAGING_PARAMS.has(name) || TAG_FILTERS.includes(name)) continue;
    const custom = model.filters?.[name];
    if (custom) { conds.push(custom(rawValues, eb)); continue; }
    const attr = def.attributes[name === 'tenant_id' ? 'project_id' : name];
    // Neutron ignores filters on attributes it does not know.
    if (!attr || !isFilterable(name, attr)) continue;
    const column = columnOf(name === 'tenant_id' ? 'project_id' : name, attr);
    if (!column) continue;
    const values = rawValues.map((v) => filterValue(name, attr, v));
    conds.push(values.some((v) => v === null)
      ? eb.or([eb(`r.${column}`, 'is', null), eb(`r.${column}`, 'in', values.filter((v) => v !== null))])
      : eb(`r.${column}`, 'in', values));
  }
  const tagsOf = (raw: string[] | undefined) => (raw ?? []).flatMap((v) => v.split(',')).filter(Boolean);
  const allTags = (tags: string[]) => eb.selectFrom('tags').select('resource_id')
    .where('resource_type', '=', def.name).where('tag', 'in', tags)
    .groupBy('resource_id').having(sql`count(*)`, '=', tags.length);
  const anyTags = (tags: string[]) => eb.selectFrom('tags').select('resource_id')
    .where('resource_type', '=', def.name).where('tag', 'in', tags);
  const t = tagsOf(query.filters.tags);
  if (t.length) conds.push(eb('r.id', 'in', allTags(t)));
  const ta = tagsOf(query.filters['tags-any']);
  if (ta.length) conds.push(eb('r.id', 'in', anyTags(ta)));
  const nt = tagsOf(query.filters['not-tags']);
  if (nt.length) conds.push(eb('r.id', 'not in', allTags(nt)));
  const nta = tagsOf(query.filters['not-tags-any']);
  if (nta.length) conds.push(eb('r.id', 'not in', anyTags(nta)));
  return conds;
}

function filterValue(name: string, attr: ResourceDef['attributes'][string], raw: string): unknown {
  if (attr.codec === 'bool') return convertAttribute(name, attr, raw) ? 1 : 0;
  if (attr.codec === 'json') return raw;
  if (raw === '' && columnOf(name, attr) && attr.convert === undefined) return raw;
  try {
    return convertAttribute(name, attr, raw);
  } catch {
    // A value that could never match (an integer attribute filtered by "abc")
    // simply matches nothing, as in Neutron.
    return raw;
  }
}

function sortKeys(def: ResourceDef, query: ListQuery): SortKey[] {
  const keys: SortKey[] = [];
  for (const s of query.sort) {
    const attr = def.attributes[s.key];
    if (!attr || !isSortable(s.key, attr)) throw new HTTPBadRequest(`[${s.key}] is invalid attribute for sort_keys`);
    keys.push(s);
  }
  // id breaks ties so that marker pagination is total.
  if (!keys.some((k) => k.key === 'id')) keys.push({ key: 'id', dir: keys[0]?.dir ?? 'asc' });
  return keys;
}

/** Rows after (or, reversed, before) the marker row in the given order. */
function afterMarker(def: ResourceDef, keys: SortKey[], marker: Row, eb: Eb): Expression<SqlBool> {
  const ors: Expression<SqlBool>[] = [];
  for (let i = 0; i < keys.length; i++) {
    const ands: Expression<SqlBool>[] = [];
    for (let j = 0; j < i; j++) {
      const col = columnOf(keys[j].key, def.attributes[keys[j].key])!;
      ands.push(eb(`r.${col}`, '=', marker[col]));
    }
    const col = columnOf(keys[i].key, def.attributes[keys[i].key])!;
    ands.push(eb(`r.${col}`, keys[i].dir === 'asc' ? '>' : '<', marker[col]));
    ors.push(eb.and(ands));
  }
  return eb.or(ors);
}

export interface Page { items: Wire[]; rows: Row[] }

/** Lists what the caller may see, filtered, sorted and paginated, rendered. */
export async function listResources(db: Db | Tx, model: ResourceModel, ctx: AuthContext, query: ListQuery): Promise<Page> {
  const { def } = model;
  const adb = db as unknown as AnyDb;
  const reverse = Boolean(query.pageReverse);
  const keys = sortKeys(def, query).map((k) => (reverse ? { key: k.key, dir: k.dir === 'asc' ? 'desc' : 'asc' } as SortKey : k));

  let markerRow: Row | undefined;
  if (query.marker) {
    markerRow = await adb.selectFrom(`${def.table} as r`).selectAll('r').where('r.id', '=', query.marker)
      .where((eb) => (ctx.isAdmin ? eb.lit(true) : model.scope(ctx, eb))).executeTakeFirst();
    if (!markerRow) throw new ResourceNotFound(def.name, query.marker);
  }

  let q = adb.selectFrom(`${def.table} as r`).selectAll('r').where((eb) => {
    const conds = whereFilters(model, query, eb);
    if (!ctx.isAdmin) conds.push(model.scope(ctx, eb));
    if (markerRow) conds.push(afterMarker(def, keys, markerRow, eb));
    return eb.and(conds);
  });
  for (const k of keys) q = q.orderBy(`r.${columnOf(k.key, def.attributes[k.key])}`, k.dir);
  if (query.limit) q = q.limit(query.limit);
  const rows = await q.execute();
  if (reverse) rows.reverse();
  return { rows, items: await renderRows(db, model, ctx, rows) };
}

/** One resource the caller may see, or <Resource>NotFound. */
export async function getResource(db: Db | Tx, model: ResourceModel, ctx: AuthContext, id: string): Promise<Wire> {
  const row = await findVisibleRow(db, model, ctx, id);
  if (!row) throw new ResourceNotFound(model.def.name, id);
  return (await renderRows(db, model, ctx, [row]))[0];
}

export async function findVisibleRow(db: Db | Tx, model: ResourceModel, ctx: AuthContext, id: string): Promise<Row | undefined> {
  return (db as unknown as AnyDb).selectFrom(`${model.def.table} as r`).selectAll('r').where('r.id', '=', id)
    .where((eb) => (ctx.isAdmin ? eb.lit(true) : model.scope(ctx, eb))).executeTakeFirst();
}

/** Rows → wire dicts: stored attributes decoded, computed ones from expand(). */
export async function renderRows(db: Db | Tx, model: ResourceModel, ctx: AuthContext, rows: Row[]): Promise<Wire[]> {
  if (rows.length === 0) return [];
  const { def } = model;
  const names = visibleAttributeNames(ctx, def);
  const [extra, tags] = await Promise.all([
    model.expand ? model.expand(db, rows, ctx) : Promise.resolve(new Map<string, Wire>()),
    def.taggable ? loadTags(db, def.name, rows.map((r) => r.id)) : Promise.resolve(new Map<string, string[]>()),
  ]);
  return rows.map((row) => {
    const out: Wire = {};
    const more = extra.get(row.id);
    for (const name of names) {
      const attr = def.attributes[name];
      const column = columnOf(name, attr);
      if (column) out[name] = decode(attr, row[column]);
      else if (name === 'tenant_id') out[name] = row.project_id;
      else if (name === 'tags') out[name] = tags.get(row.id) ?? [];
      else out[name] = more?.[name] ?? null;
    }
    return out;
  });
}

// ------------------------------------------------------------------ writing

/**
 * The row to update or delete, locked for the transaction on PostgreSQL:
 * invisible → <Resource>NotFound; visible but another project's (e.g. a shared
 * network) → PolicyNotAuthorized, as Neutron answers.
 */
export async function loadForWrite(
  tx: Tx, dialect: Dialect, model: ResourceModel, ctx: AuthContext, id: string, action: 'update' | 'delete',
): Promise<Row> {
  let q = (tx as unknown as AnyDb).selectFrom(`${model.def.table} as r`).selectAll('r').where('r.id', '=', id);
  if (dialect === 'postgres') q = q.forUpdate();
  const row = await q.executeTakeFirst();
  if (!row) throw new ResourceNotFound(model.def.name, id);
  if (!ctx.isAdmin && row.project_id !== ctx.projectId) {
    const visible = await findVisibleRow(tx, model, ctx, id);
    if (!visible) throw new ResourceNotFound(model.def.name, id);
    throw new PolicyNotAuthorized(`rule:${action}_${model.def.name}`);
  }
  if (!ctx.isAdmin && !ctx.canWrite) throw new PolicyNotAuthorized(`rule:${action}_${model.def.name}`);
  return row;
}

/** If-Match: revision_number=N → 412 when the stored revision differs. */
export function checkRevision(row: Row, ifMatch: string | undefined): void {
  if (!ifMatch) return;
  for (const part of ifMatch.split(',')) {
    const m = /^\s*revision_number=(\d+)\s*$/.exec(part);
    if (!m) throw new HTTPBadRequest(`Invalid If-Match header: ${ifMatch}`);
    const expected = Number(m[1]);
    if (expected !== row.revision_number) throw new RevisionNumberConstraintFailed(expected, row.revision_number);
  }
}

/** Columns that every update sets: a newer updated_at and the next revision. */
export function bumped(row: Row): { updated_at: string; revision_number: number } {
  return { updated_at: now(), revision_number: row.revision_number + 1 };
}

/** Bumps a resource's revision because something it shows changed (a new subnet on a network). */
export async function bumpRevision(tx: Tx, table: string, id: string): Promise<void> {
  await (tx as unknown as AnyDb).updateTable(table)
    .set((eb: Eb) => ({ revision_number: eb('revision_number', '+', 1), updated_at: now() }))
    .where('id', '=', id).execute();
}

// --------------------------------------------------------------------- tags

export async function loadTags(db: Db | Tx, resourceType: string, ids: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (ids.length === 0) return out;
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await db.selectFrom('tags').select(['resource_id', 'tag'])
      .where('resource_type', '=', resourceType).where('resource_id', 'in', ids.slice(i, i + 500))
      .orderBy('tag').execute();
    for (const r of rows) {
      const list = out.get(r.resource_id) ?? [];
      list.push(r.tag);
      out.set(r.resource_id, list);
    }
  }
  return out;
}

export const MAX_TAGS = 50;

export function validateTag(tag: unknown): string {
  if (typeof tag !== 'string' || tag.length === 0 || tag.length > 255) {
    throw new HTTPBadRequest(`Invalid input for tags. Reason: '${String(tag)}' is not a valid tag.`);
  }
  if (tag.includes(',')) throw new HTTPBadRequest(`Invalid input for tags. Reason: '${tag}' contains a comma.`);
  return tag;
}

export async function replaceTags(tx: Tx, resourceType: string, id: string, tags: string[]): Promise<void> {
  const unique = [...new Set(tags.map(validateTag))];
  if (unique.length > MAX_TAGS) throw new HTTPBadRequest(`Invalid input for tags. Reason: more than ${MAX_TAGS} tags.`);
  await tx.deleteFrom('tags').where('resource_id', '=', id).execute();
  if (unique.length) {
    await tx.insertInto('tags').values(unique.map((tag) => ({ resource_type: resourceType, resource_id: id, tag }))).execute();
  }
}

export async function addTag(tx: Tx, resourceType: string, id: string, tag: string): Promise<void> {
  validateTag(tag);
  const existing = await tx.selectFrom('tags').select('tag').where('resource_id', '=', id).execute();
  if (existing.some((r) => r.tag === tag)) return;
  if (existing.length >= MAX_TAGS) throw new HTTPBadRequest(`Invalid input for tags. Reason: more than ${MAX_TAGS} tags.`);
  await tx.insertInto('tags').values({ resource_type: resourceType, resource_id: id, tag }).execute();
}

export async function removeTag(tx: Tx, resourceType: string, id: string, tag: string): Promise<void> {
  const r = await tx.deleteFrom('tags').where('resource_id', '=', id).where('tag', '=', tag).executeTakeFirst();
  if (Number(r.numDeletedRows) === 0) throw new TagNotFound(resourceType, id, tag);
}

export type { Store };
