/** GET /health: liveness and readiness for load balancers and orchestrators, without a token. */
import type { Broker } from '@secondary-mx/amqp';
import type { Pool } from '@secondary-mx/db';
import type { FastifyInstance } from 'fastify';
import { checkDatabase, checkRabbitmq } from '../checks.ts';

const HealthSchema = {
  type: 'object',
  required: ['status', 'checks'],
  properties: {
    status: { type: 'string', enum: ['ok', 'unavailable'] },
    checks: {
      type: 'object',
      required: ['database', 'rabbitmq'],
      properties: {
        database: { type: 'string', enum: ['ok', 'unreachable', 'schema missing', 'failed'] },
        rabbitmq: { type: 'string', enum: ['ok', 'disconnected'] },
      },
    },
  },
} as const;

export function healthRoutes(app: FastifyInstance, deps: { pool: Pool; broker: Broker }): void {
  let lastStatus = 'ok';

  app.get(
    '/health',
    {
      // Probes poll this route every few seconds, so only warnings and errors are logged.
      logLevel: 'warn',
      schema: {
        summary: 'Health of the service and its backends',
        tags: ['operations'],
        security: [],
        response: { 200: HealthSchema, 503: HealthSchema },
      },
    },
    async (_request, reply) => {
      const database = await checkDatabase(deps.pool);
      const checks = { database: database.status, rabbitmq: checkRabbitmq(deps.broker) };
      const status = checks.database === 'ok' && checks.rabbitmq === 'ok' ? 'ok' : 'unavailable';

      // Logged on change only, so a long outage does not write one line per probe.
      if (status !== lastStatus && status === 'ok') {
        app.log.info({ checks }, 'health changed to ok');
      } else if (status !== lastStatus) {
        app.log.warn({ checks, err: database.error }, `health changed to ${status}`);
      }
      lastStatus = status;

      return reply.code(status === 'ok' ? 200 : 503).send({ status, checks });
    },
  );
}
