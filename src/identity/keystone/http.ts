// Request helpers shared by the route modules: base URL, caller, query values.
import type { FastifyRequest } from 'fastify';
import { Unauthorized } from './errors.ts';
import type { Endpoints, TokenInfo } from './model.ts';
import type { TokenService } from './tokens.ts';
import { trimSlash } from './views.ts';

export type Query = Record<string, string | string[] | undefined>;

export interface RouteContext {
  endpoints: Endpoints;
  tokens: TokenService;
}

/** The public root of this API: the configured identity URL, or where the request was sent when there is none yet. */
export function baseUrl(ctx: RouteContext, req: FastifyRequest): string {
  return trimSlash(ctx.endpoints.identityUrl) || `${req.protocol}://${req.host}`;
}

/** The request's own URL, for the `self` link of a list. */
export function selfUrl(ctx: RouteContext, req: FastifyRequest): string {
  return baseUrl(ctx, req) + req.url;
}

export function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** One query value; a repeated key counts by its first occurrence. */
export function queryValue(req: FastifyRequest, name: string): string | undefined {
  const v = (req.query as Query)[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The caller behind X-Auth-Token (scoped or not); 401 when it is missing or not valid. */
export async function caller(ctx: RouteContext, req: FastifyRequest): Promise<TokenInfo> {
  const token = header(req, 'x-auth-token');
  const info = token ? await ctx.tokens.resolve(token) : null;
  if (!info) throw new Unauthorized();
  return info;
}
