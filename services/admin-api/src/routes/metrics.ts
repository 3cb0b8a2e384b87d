/** GET /metrics: Prometheus metrics, without a token. */
import type { Broker } from '@secondary-mx/amqp';
import type { Pool } from '@secondary-mx/db';
import type { FastifyInstance } from 'fastify';
import { createAdminMetrics } from '../metrics.ts';

export function metricsRoutes(app: FastifyInstance, deps: { pool: Pool; broker: Broker }): void {
  const metrics = createAdminMetrics(deps.pool, deps.broker);
  app.get(
    '/metrics',
    {
      logLevel: 'warn',
      schema: {
        summary: 'Prometheus metrics of the spool and the domains',
        tags: ['operations'],
        security: [],
        response: {
          200: {
            description: 'Prometheus text exposition format 0.0.4',
            content: { 'text/plain': { schema: { type: 'string' } } },
          },
        },
      },
    },
    async (request, reply) => {
      const text = await metrics.render(request.log);
      return reply.type(metrics.contentType).send(text);
    },
  );
}
