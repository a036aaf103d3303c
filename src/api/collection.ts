// Serves any ResourceService as a Neutron collection: list/show/create/update/
// delete, bulk create, fields, filters, sorting, pagination links, If-Match,
// and the /tags sub-resource. Everything resource-specific is in the service.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { HTTPBadRequest } from '../errors.ts';
import type { ResourceService } from '../services/resource-service.ts';
import type { ListQuery, SortKey, Wire } from '../services/resource-store.ts';
import { callerOf } from './auth.ts';

type Query = Record<string, string | string[] | undefined>;

const asList = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** Query string → ListQuery, with Neutron's messages for bad paging parameters. */
export function parseListQuery(q: Query): ListQuery {
  const filters: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(q)) filters[k] = asList(v);
  const keys = asList(q.sort_key);
  const dirs = asList(q.sort_dir);
  if (dirs.length && dirs.length !== keys.length) throw new HTTPBadRequest('The number of sort_keys and sort_dirs must be same');
  const sort: SortKey[] = keys.map((key, i) => {
    const dir = (dirs[i] ?? 'asc').toLowerCase();
    if (dir !== 'asc' && dir !== 'desc') throw new HTTPBadRequest(`[${dirs[i]}] is invalid value for sort_dir, valid value is 'asc' and 'desc'`);
    return { key, dir };
  });
  let limit: number | undefined;
  const rawLimit = asList(q.limit)[0];
  if (rawLimit !== undefined) {
    if (!/^\d+$/.test(rawLimit)) throw new HTTPBadRequest(`Limit must be an integer 0 or greater and not '${rawLimit}'`);
    limit = Number(rawLimit) || undefined;
  }
  const fields = asList(q.fields).flatMap((f) => f.split(',')).filter(Boolean);
  return {
    filters, sort, limit,
    fields: fields.length ? fields : undefined,
    marker: asList(q.marker)[0],
    pageReverse: /^(true|1)$/i.test(asList(q.page_reverse)[0] ?? ''),
  };
}

/** Keeps only the requested fields, in the resource's own order. */
export function pickFields(item: Wire, fields?: string[]): Wire {
  if (!fields) return item;
  const out: Wire = {};
  for (const k of Object.keys(item)) if (fields.includes(k)) out[k] = item[k];
  return out;
}

/** Neutron's get_pagination_links, to the letter (see neutron/api/api_common.py). */
export function paginationLinks(requestUrl: string, items: Wire[], limit: number | undefined, pageReverse: boolean): Array<{ rel: string; href: string }> {
  if (!limit) return [];
  const links: Array<{ rel: string; href: string }> = [];
  const href = (marker: unknown, reverse: boolean) => {
    const u = new URL(requestUrl);
    u.searchParams.delete('marker');
    u.searchParams.delete('page_reverse');
    if (marker !== undefined) u.searchParams.append('marker', String(marker));
    if (reverse) u.searchParams.append('page_reverse', 'True');
    return u.toString();
  };
  if (!(items.length < limit && !pageReverse)) links.push({ rel: 'next', href: href(items.at(-1)?.id, false) });
  if (!(items.length < limit && pageReverse)) links.push({ rel: 'previous', href: href(items[0]?.id, true) });
  return links;
}

export function requestUrl(req: FastifyRequest): string {
  return `${req.protocol}://${req.headers.host ?? 'localhost'}${req.url}`;
}

function ifMatch(req: FastifyRequest): string | undefined {
  const h = req.headers['if-match'];
  return Array.isArray(h) ? h.join(',') : h;
}

function envelope(body: unknown, key: string): unknown {
  if (body === null || typeof body !== 'object' || Array.isArray(body) || !(key in (body as object))) {
    throw new HTTPBadRequest(`Unable to find '${key}' in request body`);
  }
  return (body as Record<string, unknown>)[key];
}

export function registerCollection(app: FastifyInstance, service: ResourceService, prefix = '/v2.0'): void {
  const { name, collection } = service.def;
  const base = `${prefix}/${service.def.path ?? collection}`;
  type IdParams = { id: string };
  type TagParams = { id: string; tag: string };

  app.get(base, async (req: FastifyRequest<{ Querystring: Query }>) => {
    const query = parseListQuery(req.query);
    const { items } = await service.list(callerOf(req), query);
    const out: Record<string, unknown> = { [collection]: items.map((i) => pickFields(i, query.fields)) };
    const links = paginationLinks(requestUrl(req), items, query.limit, Boolean(query.pageReverse));
    if (links.length) out[`${collection}_links`] = links;
    return out;
  });

  app.get(`${base}/:id`, async (req: FastifyRequest<{ Params: IdParams; Querystring: Query }>) => {
    const item = await service.get(callerOf(req), req.params.id);
    return { [name]: pickFields(item, parseListQuery(req.query).fields) };
  });

  app.post(base, async (req: FastifyRequest, reply: FastifyReply) => {
    const body = req.body as Record<string, unknown> | null;
    reply.code(201);
    // A list under the plural key is a bulk create: all or nothing.
    if (body && typeof body === 'object' && collection in body) {
      const list = body[collection];
      if (!Array.isArray(list)) throw new HTTPBadRequest(`Unable to find '${name}' in request body`);
      if (list.length === 0) throw new HTTPBadRequest('Resources required');
      const items = await service.createBulk(callerOf(req), list);
      return { [collection]: items };
    }
    return { [name]: await service.create(callerOf(req), envelope(body, name)) };
  });

  app.put(`${base}/:id`, async (req: FastifyRequest<{ Params: IdParams }>) => {
    return { [name]: await service.update(callerOf(req), req.params.id, envelope(req.body, name), ifMatch(req)) };
  });

  app.delete(`${base}/:id`, async (req: FastifyRequest<{ Params: IdParams }>, reply: FastifyReply) => {
    await service.delete(callerOf(req), req.params.id, ifMatch(req));
    reply.code(204).send();
  });

  if (!service.def.taggable) return;
  app.get(`${base}/:id/tags`, async (req: FastifyRequest<{ Params: IdParams }>) => ({
    tags: await service.getTags(callerOf(req), req.params.id),
  }));
  app.get(`${base}/:id/tags/:tag`, async (req: FastifyRequest<{ Params: TagParams }>, reply: FastifyReply) => {
    await service.hasTag(callerOf(req), req.params.id, req.params.tag);
    reply.code(204).send();
  });
  app.put(`${base}/:id/tags`, async (req: FastifyRequest<{ Params: IdParams }>) => {
    const tags = envelope(req.body, 'tags');
    if (!Array.isArray(tags)) throw new HTTPBadRequest("Invalid input for tags. Reason: 'tags' is not a list.");
    return { tags: await service.replaceTags(callerOf(req), req.params.id, tags, ifMatch(req)) };
  });
  app.put(`${base}/:id/tags/:tag`, async (req: FastifyRequest<{ Params: TagParams }>, reply: FastifyReply) => {
    await service.addTag(callerOf(req), req.params.id, req.params.tag, ifMatch(req));
    reply.code(201).send();
  });
  app.delete(`${base}/:id/tags`, async (req: FastifyRequest<{ Params: IdParams }>, reply: FastifyReply) => {
    await service.removeAllTags(callerOf(req), req.params.id, ifMatch(req));
    reply.code(204).send();
  });
  app.delete(`${base}/:id/tags/:tag`, async (req: FastifyRequest<{ Params: TagParams }>, reply: FastifyReply) => {
    await service.removeTag(callerOf(req), req.params.id, req.params.tag, ifMatch(req));
    reply.code(204).send();
  });
}
