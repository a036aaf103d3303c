// Prometheus metrics at GET /metrics: request counts and latency by route and
// status. One registry per app, so several servers in one process (tests, the
// two-cloud VPN set-up) do not mix their figures.
import type { FastifyInstance } from 'fastify';
import client from 'prom-client';

export function installMetrics(app: FastifyInstance, prefix = 'nucleon_'): client.Registry {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix });
  const requests = new client.Counter({
    name: `${prefix}http_requests_total`,
    help: 'HTTP requests served, by method, route template and status code',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const latency = new client.Histogram({
    name: `${prefix}http_request_duration_seconds`,
    help: 'HTTP request latency, by method, route template and status code',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });

  app.addHook('onResponse', async (req, reply) => {
    // The route template (/v2.0/ports/:id), never the raw URL: bounded label values.
    const route = req.routeOptions.url ?? 'unmatched';
    const labels = { method: req.method, route, status: String(reply.statusCode) };
    requests.inc(labels);
    latency.observe(labels, reply.elapsedTime / 1000);
  });

  app.get('/metrics', async (_req, reply) => {
    reply.header('Content-Type', registry.contentType);
    return registry.metrics();
  });
  return registry;
}
