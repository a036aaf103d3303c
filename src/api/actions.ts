// Member actions that are not plain CRUD on a collection (Neutron's
// "member_actions"): PUT /v2.0/<collection>/<id>/<action>.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Services } from '../services/index.ts';
import { callerOf } from './auth.ts';

type ActionRequest = FastifyRequest<{ Params: { id: string } }>;

const ifMatch = (req: FastifyRequest) => req.headers['if-match'] as string | undefined;

export function registerActions(app: FastifyInstance, services: Services): void {
  for (const action of ['add', 'remove'] as const) {
    app.put(`/v2.0/address-groups/:id/${action}_addresses`, async (req: ActionRequest) => ({
      address_group: await services.addressGroups.changeAddresses(callerOf(req), req.params.id, req.body, action, ifMatch(req)),
    }));
  }
  // Router interfaces: the body is the interface itself ({"subnet_id": ...} or {"port_id": ...}), and so is the answer (200).
  app.put('/v2.0/routers/:id/add_router_interface', async (req: ActionRequest) =>
    services.routers.addInterface(callerOf(req), req.params.id, req.body));
  app.put('/v2.0/routers/:id/remove_router_interface', async (req: ActionRequest) =>
    services.routers.removeInterface(callerOf(req), req.params.id, req.body));
}
