/** POST /api/domains/:domain/flush: makes every waiting recipient of a domain due now. */

import { normalizeDomain } from '@secondary-mx/address';
import type { Broker } from '@secondary-mx/amqp';
import { flushDomain, getDomain, type Pool } from '@secondary-mx/db';
import type { FastifyInstance } from 'fastify';
import { canAccessDomain } from '../auth.ts';
import { publishControlEvent } from '../control-events.ts';
import { invalidDomainBody, unknownDomainBody } from '../errors.ts';
import { DomainParamsSchema, errorResponses } from '../schemas.ts';

const FlushResponseSchema = {
  type: 'object',
  required: ['domain', 'scheduled'],
  properties: {
    domain: { type: 'string' },
    scheduled: { type: 'integer', description: 'queued or deferred recipients made due now' },
  },
} as const;

export function flushRoutes(app: FastifyInstance, deps: { pool: Pool; broker: Broker }): void {
  app.post<{ Params: { domain: string } }>(
    '/domains/:domain/flush',
    {
      schema: {
        summary: 'Schedule every queued or deferred recipient of the domain now',
        description: 'Recipients on hold, leased to a worker or final are left alone.',
        tags: ['domains'],
        params: DomainParamsSchema,
        response: { 200: FlushResponseSchema, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request, reply) => {
      const domain = normalizeDomain(request.params.domain);
      if (!domain) {
        return reply.code(400).send(invalidDomainBody(request.params.domain));
      }

      if (!canAccessDomain(request, domain) || !(await getDomain(deps.pool, domain))) {
        return reply.code(404).send(unknownDomainBody(domain));
      }

      const scheduled = await flushDomain(deps.pool, domain);
      request.log.info({ domain, scheduled }, 'domain flushed');
      await publishControlEvent(deps.broker, request.log, { type: 'flush', domain });
      return reply.send({ domain, scheduled });
    },
  );
}
