// Token authentication for the Networking API: every /v2.0 request carries
// X-Auth-Token, validated by the identity service (in-process, cached there).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuthContext, TokenValidator } from '../identity/context.ts';

declare module 'fastify' {
  interface FastifyRequest {
    caller?: AuthContext;
  }
}

export function callerOf(req: FastifyRequest): AuthContext {
  if (!req.caller) throw new Error('unauthenticated request reached a handler');
  return req.caller;
}

/** Paths answered without a token: version discovery and metrics. */
const PUBLIC = new Set(['/', '/metrics']);

export function installAuth(app: FastifyInstance, validator: TokenValidator, identityUrl: () => string): void {
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    const path = req.url.split('?')[0];
    if (PUBLIC.has(path)) return;
    const token = req.headers['x-auth-token'];
    const caller = typeof token === 'string' && token ? await validator.validateToken(token) : null;
    if (!caller) {
      // keystonemiddleware's answer, body and header as a real Neutron sends them.
      reply.code(401).header('Www-Authenticate', `Keystone uri="${identityUrl()}"`).send({
        error: { code: 401, title: 'Unauthorized', message: 'The request you have made requires authentication.' },
      });
      return reply;
    }
    req.caller = caller;
  });
}
