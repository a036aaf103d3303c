// The Identity API's fastify instance: Keystone's error bodies and headers,
// a lenient JSON body parser, and the routes of routes.ts.
import crypto from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import Fastify, {
  type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions,
} from 'fastify';
import { KeystoneError, ValidationError, errorBody } from './errors.ts';
import { baseUrl } from './http.ts';
import {
  registerAuthRoutes, registerGrantRoutes, registerProjectRoutes, registerRoleAndDomainRoutes, registerUserRoutes,
  registerVersionRoutes, type Routes,
} from './routes.ts';

// Tokens travel in these headers; they must never reach a log line.
const REDACT = ['req.headers["x-auth-token"]', 'req.headers["x-subject-token"]', 'res.headers["x-subject-token"]'];

function isLoggerInstance(v: object): v is FastifyBaseLogger {
  const l = v as Partial<FastifyBaseLogger>;
  return typeof l.info === 'function' && typeof l.child === 'function';
}

/** `logger` may be a flag, pino options, or a ready logger (shared with the rest of the server). */
export function loggerOptions(logger: boolean | object | undefined): Pick<FastifyServerOptions, 'logger'> & { loggerInstance?: FastifyBaseLogger } {
  if (logger === undefined || logger === false) return { logger: false };
  if (logger === true) return { logger: { redact: REDACT } };
  if (isLoggerInstance(logger)) return { loggerInstance: logger.child({ api: 'identity' }) };
  return { logger: { ...logger, redact: REDACT } };
}

function sendError(reply: FastifyReply, identityBase: string, code: number, title: string, message: string): FastifyReply {
  // Keystone tells a client where to authenticate with every 401.
  if (code === 401) reply.header('www-authenticate', `Keystone uri="${identityBase}/v3"`);
  return reply.code(code).send(errorBody(code, title, message));
}

/** Keystone's error body for anything thrown: typed errors as they are, client errors by status, the rest as a logged 500. */
function sendFailure(routes: Routes, err: unknown, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  const base = baseUrl(routes, req);
  if (err instanceof KeystoneError) return sendError(reply, base, err.code, err.title, err.message);
  const status = (err as { statusCode?: number }).statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    // fastify's own client errors (bad URL, body too large...): their messages carry no secrets.
    return sendError(reply, base, status, STATUS_CODES[status] ?? 'Error', (err as Error).message);
  }
  req.log.error({ err }, 'identity request failed');
  return sendError(reply, base, 500, 'Internal Server Error', 'An unexpected error prevented the server from fulfilling your request.');
}

export function buildApp(routes: Routes, logger?: boolean | object): FastifyInstance {
  const app = Fastify({
    ...loggerOptions(logger),
    routerOptions: { ignoreTrailingSlash: true },
    // Our own ids only: a client-chosen id could be used to forge log lines.
    requestIdHeader: false,
    genReqId: () => `req-${crypto.randomUUID()}`,
    bodyLimit: 1024 * 1024,
    // Errors raised before routing (malformed URL, overlong path parameter).
    frameworkErrors: (err, req, reply) => sendFailure(routes, err, req, reply),
  });

  // Keystone clients send JSON, sometimes with an empty body (PUT of a grant)
  // or an unusual content type; accept all of it and answer bad JSON with 400.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      done(new ValidationError('The request body is not valid JSON.'), undefined);
    }
  });

  app.addHook('onSend', async (req, reply) => {
    reply.header('vary', 'X-Auth-Token');
    reply.header('x-openstack-request-id', req.id);
  });

  app.setErrorHandler((err, req, reply) => sendFailure(routes, err, req, reply));
  app.setNotFoundHandler((req, reply) => sendError(reply, baseUrl(routes, req), 404, 'Not Found', 'The resource could not be found.'));

  registerVersionRoutes(app, routes);
  registerAuthRoutes(app, routes);
  registerProjectRoutes(app, routes);
  registerUserRoutes(app, routes);
  registerRoleAndDomainRoutes(app, routes);
  registerGrantRoutes(app, routes);
  return app;
}
