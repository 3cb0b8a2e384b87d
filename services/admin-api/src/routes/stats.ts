/** GET /api/stats: recipient counts by state and domain, the oldest waiting message, activity. */
import { RECIPIENT_STATES } from '@secondary-mx/contracts';
import { type Pool, spoolStats } from '@secondary-mx/db';
import type { FastifyInstance } from 'fastify';
import { domainScope } from '../auth.ts';
import { errorResponses } from '../schemas.ts';

const StateCountsSchema = {
  type: 'object',
  required: [...RECIPIENT_STATES],
  properties: Object.fromEntries(RECIPIENT_STATES.map((state) => [state, { type: 'integer' }])),
} as const;

const ActivitySchema = {
  type: 'object',
  required: ['delivered', 'failed', 'deferred', 'dsns'],
  properties: {
    delivered: { type: 'integer', description: 'delivery attempts the next hop accepted' },
    failed: { type: 'integer', description: 'delivery attempts that failed permanently' },
    deferred: { type: 'integer', description: 'delivery attempts that failed temporarily' },
    dsns: { type: 'integer', description: 'DSNs queued to senders' },
  },
} as const;

const StatsSchema = {
  type: 'object',
  required: ['states', 'domains', 'oldestWaitingAgeSeconds', 'lastHour', 'lastDay'],
  properties: {
    states: { ...StateCountsSchema, description: 'recipients in the spool by state' },
    domains: {
      type: 'array',
      items: {
        type: 'object',
        required: ['domain', 'states'],
        properties: { domain: { type: 'string' }, states: StateCountsSchema },
      },
      description: 'the same counts for each recipient domain in the spool',
    },
    oldestWaitingAgeSeconds: {
      type: ['integer', 'null'],
      description:
        'age of the oldest message with a recipient queued, active or deferred; held ones do ' +
        'not count; null when there is none',
    },
    lastHour: ActivitySchema,
    lastDay: ActivitySchema,
  },
} as const;

export function statsRoutes(app: FastifyInstance, deps: { pool: Pool }): void {
  app.get(
    '/stats',
    {
      schema: {
        summary: 'Count the spool by state and domain, with the activity of the last hour and day',
        description:
          'Final recipients count until their message is removed after MX_RETENTION. A member ' +
          'token sees its own domain only, and the DSNs about messages with a recipient there.',
        tags: ['messages'],
        response: { 200: StatsSchema, ...errorResponses(401, 503) },
      },
    },
    async (request, reply) => {
      return reply.send(await spoolStats(deps.pool, domainScope(request)));
    },
  );
}
