// HTTP routes of the quotas and quota_details extensions (not a collection:
// the member id is a project id, and there are `default` and `details`
// sub-resources). `openstack quota show/set` and openstacksdk's
// get_quota/update_quota/delete_quota call exactly these.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { QuotaService } from '../services/quotas.ts';
import { HTTPNotImplemented, QuotaMissingTenant } from '../services/quotas.ts';
import { callerOf } from './auth.ts';

type ProjectParams = { project_id: string };

export function registerQuotaRoutes(app: FastifyInstance, quotas: QuotaService, prefix = '/v2.0'): void {
  const base = `${prefix}/quotas`;

  app.get(base, async (req) => ({ quotas: await quotas.list(callerOf(req)) }));

  app.post(base, async () => {
    throw new HTTPNotImplemented('POST requests are not supported on this resource.');
  });

  // Collection actions: which project the token is scoped to. The legacy
  // `neutron quota-show` (no --tenant-id) asks /quotas/tenant first.
  for (const key of ['tenant', 'project'] as const) {
    app.get(`${base}/${key}`, async (req) => {
      const ctx = callerOf(req);
      if (!ctx.projectId) throw new QuotaMissingTenant();
      return { [key]: { [`${key}_id`]: ctx.projectId } };
    });
  }

  app.get(`${base}/:project_id`, async (req: FastifyRequest<{ Params: ProjectParams }>) => ({
    quota: await quotas.show(callerOf(req), req.params.project_id),
  }));

  app.get(`${base}/:project_id/default`, async (req: FastifyRequest<{ Params: ProjectParams }>) => ({
    quota: await quotas.defaults(callerOf(req), req.params.project_id),
  }));

  app.get(`${base}/:project_id/details`, async (req: FastifyRequest<{ Params: ProjectParams }>) => ({
    quota: await quotas.details(callerOf(req), req.params.project_id),
  }));

  app.put(`${base}/:project_id`, async (req: FastifyRequest<{ Params: ProjectParams }>) => ({
    quota: await quotas.update(callerOf(req), req.params.project_id, req.body),
  }));

  app.delete(`${base}/:project_id`, async (req: FastifyRequest<{ Params: ProjectParams }>, reply: FastifyReply) => {
    await quotas.reset(callerOf(req), req.params.project_id);
    reply.code(204).send();
  });
}
