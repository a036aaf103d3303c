// Builds the resource services over one store. The API layer serves every
// entry of `collections` as a Neutron collection; `routes` are extra,
// non-collection endpoints (quotas, router actions...).
import type { FastifyInstance } from 'fastify';
import type { Store } from '../store/database.ts';
import { NetworkService } from './networks.ts';
import { QuotaService } from './quotas.ts';
import { registerQuotaRoutes } from '../api/quotas.ts';
import type { ResourceService } from './resource-service.ts';
import { DEFAULT_SEGMENT_CONFIG, type SegmentConfig } from './segments.ts';

export interface ServiceConfig {
  segments: SegmentConfig;
}

export const DEFAULT_SERVICE_CONFIG: ServiceConfig = { segments: DEFAULT_SEGMENT_CONFIG };

export interface Services {
  networks: NetworkService;
  quotas: QuotaService;
  collections: ResourceService[];
  routes: Array<(app: FastifyInstance) => Promise<void> | void>;
}

export function createServices(store: Store, config: ServiceConfig = DEFAULT_SERVICE_CONFIG): Services {
  const networks = new NetworkService(store, config.segments);
  const quotas = new QuotaService(store);
  return {
    networks,
    quotas,
    collections: [networks],
    routes: [(app) => registerQuotaRoutes(app, quotas)],
  };
}
