// The Networking API v2.0 HTTP application (port 9696): Neutron's wire format
// on top of the resource services. Errors are mapped to HTTP here and only here.
import crypto from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { HTTPBadRequest, HTTPNotFound, NeutronError } from '../errors.ts';
import type { TokenValidator } from '../identity/context.ts';
import type { Services } from '../services/index.ts';
import { installAuth } from './auth.ts';
import { registerCollection, requestUrl } from './collection.ts';
import { EXTENSIONS } from './extensions.ts';
import { installMetrics } from './metrics.ts';
import { registerActions } from './actions.ts';
import { registerQuotaRoutes } from './quotas.ts';

export interface NetworkAppOptions {
  identity: TokenValidator;
  /** The identity endpoint, for 401 answers (read lazily: known after listen). */
  identityUrl: () => string;
  logger?: boolean | object;
  /** Largest accepted request body in bytes (Neutron's max_request_body_size is 112 KiB). */
  bodyLimit?: number;
}

/** Collections listed by GET /v2.0 (the core resources). */
const CORE_COLLECTIONS = [['network', 'networks'], ['subnet', 'subnets'], ['port', 'ports']] as const;

export const REDACTED_HEADERS = ['req.headers["x-auth-token"]', 'req.headers["x-subject-token"]', 'req.headers.authorization'];

export function errorBody(type: string, message: string, detail = '') {
  return { NeutronError: { type, message, detail } };
}

export async function buildNetworkApp(services: Services, opts: NetworkAppOptions): Promise<FastifyInstance> {
  const bodyLimit = opts.bodyLimit ?? 1024 * 1024;
  const app = Fastify({
    logger: opts.logger === undefined ? false : opts.logger === true ? { redact: REDACTED_HEADERS } : opts.logger,
    bodyLimit,
    genReqId: () => `req-${crypto.randomUUID()}`,
    requestIdHeader: false,
    // Neutron accepts `/v2.0/networks/` as well as `/v2.0/networks`.
    routerOptions: { ignoreTrailingSlash: true },
  });

  app.addHook('onRequest', async (req, reply) => {
    reply.header('X-Openstack-Request-Id', req.id);
  });

  // Our own JSON parser so that bad bodies get Neutron's answer, not fastify's.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    const text = String(body ?? '');
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      done(new HTTPBadRequest('Body contains invalid data'), undefined);
    }
  });

  app.setErrorHandler((err: unknown, req, reply) => {
    if (err instanceof NeutronError) {
      return reply.code(err.status).send(errorBody(err.type, err.message, err.detail));
    }
    const e = err as { statusCode?: number; code?: string; message?: string };
    if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.code(400).send(errorBody('HTTPBadRequest', `Request body is larger than the limit of ${bodyLimit} bytes`));
    }
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
      return reply.code(400).send(errorBody('HTTPBadRequest', 'Body contains invalid data'));
    }
    req.log.error({ err }, 'request failed');
    return reply.code(500).send(errorBody('HTTPInternalServerError', 'Request Failed: internal server error while processing your request.'));
  });

  app.setNotFoundHandler((_req, reply) => {
    const e = new HTTPNotFound();
    reply.code(404).send(errorBody(e.type, e.message));
  });

  installMetrics(app);
  installAuth(app, opts.identity, opts.identityUrl);

  app.get('/', async (req) => {
    const base = `${req.protocol}://${req.headers.host ?? 'localhost'}`;
    return { versions: [{ id: 'v2.0', status: 'CURRENT', links: [{ rel: 'self', href: `${base}/v2.0/` }] }] };
  });

  app.get('/v2.0', async (req: FastifyRequest) => {
    const base = requestUrl(req).replace(/\/v2\.0\/?(\?.*)?$/, '/v2.0');
    return {
      resources: CORE_COLLECTIONS.map(([name, collection]) => ({
        name, collection, links: [{ rel: 'self', href: `${base}/${collection}` }],
      })),
    };
  });

  app.get('/v2.0/extensions', async () => ({ extensions: EXTENSIONS }));
  app.get('/v2.0/extensions/:alias', async (req: FastifyRequest<{ Params: { alias: string } }>) => {
    const ext = EXTENSIONS.find((e) => e.alias === req.params.alias);
    if (!ext) throw new HTTPNotFound();
    return { extension: ext };
  });

  for (const service of services.collections) registerCollection(app, service);
  registerActions(app, services);
  registerQuotaRoutes(app, services.quotas);
  return app;
}
