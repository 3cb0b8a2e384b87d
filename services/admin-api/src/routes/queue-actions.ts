/**
 * Queue actions: POST /api/messages/:id/:action on one message and
 * POST /api/messages/actions/:action on every message that matches a filter. What each action
 * does to each recipient state is described in packages/db/src/queue-actions.ts and the README.
 */
import type { Broker } from '@secondary-mx/amqp';
import {
  applyQueueAction,
  getMessage,
  type Pool,
  QUEUE_ACTIONS,
  type QueueAction,
  type QueueActionResult,
  type SpoolFilter,
} from '@secondary-mx/db';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { actorOf, domainScope } from '../auth.ts';
import { publishControlEvent } from '../control-events.ts';
import { errorBody } from '../errors.ts';
import { errorResponses } from '../schemas.ts';
import {
  FILTER_FIELDS,
  FILTER_PROPERTIES,
  FilterError,
  type FilterFields,
  parseFilter,
  parseQueueId,
} from '../spool-filter.ts';
import { invalidQueueIdBody, MessageIdParamsSchema, unknownMessageBody } from './messages.ts';

const ACTION_DESCRIPTION =
  '`retry` makes queued and deferred recipients due now; `hold` puts queued and deferred ' +
  'recipients on hold; `release` makes held recipients due now; `delete` removes recipients ' +
  'in any state without a DSN; `bounce` fails queued, deferred and held recipients and sends ' +
  'the sender a DSN as for any failure. `hold` and `bounce` of an active recipient take ' +
  'effect when its attempt ends, unless the attempt delivers or fails it.';

const ActionParamSchema = {
  type: 'string',
  enum: [...QUEUE_ACTIONS],
  description: 'retry, hold, release, delete or bounce',
} as const;

/** Actions after which queue-store has due recipients to schedule or DSNs to queue. */
const NOTIFIED_ACTIONS: ReadonlySet<QueueAction> = new Set(['retry', 'release', 'bounce']);

interface BulkBody extends FilterFields {
  all?: boolean;
}

/** Runs the action, logs it and publishes queue.changed when queue-store has work to do now. */
async function runAction(
  request: FastifyRequest,
  broker: Broker,
  pool: Pool,
  action: QueueAction,
  filter: SpoolFilter,
): Promise<QueueActionResult> {
  const result = await applyQueueAction(pool, action, filter);
  request.log.info(
    {
      action,
      actor: actorOf(request.principal),
      queueId: filter.queueId,
      domain: filter.domain,
      recipients: result.recipients,
      messages: result.messages,
    },
    'queue action applied',
  );
  if (result.recipients > 0 && NOTIFIED_ACTIONS.has(action)) {
    await publishControlEvent(broker, request.log, { type: 'queue.changed' });
  }
  return result;
}

export function queueActionRoutes(
  app: FastifyInstance,
  deps: { pool: Pool; broker: Broker },
): void {
  const { pool, broker } = deps;

  app.post<{ Params: { action: QueueAction }; Body: BulkBody | undefined }>(
    '/messages/actions/:action',
    {
      schema: {
        summary: 'Apply an action to every recipient that matches a filter',
        description:
          `${ACTION_DESCRIPTION} The filter needs at least one field; \`{"all": true}\` ` +
          'matches the whole spool and needs an administrator token. A member token acts on ' +
          "its own domain's recipients only.",
        tags: ['messages'],
        params: {
          type: 'object',
          required: ['action'],
          properties: { action: ActionParamSchema },
        },
        body: {
          type: 'object',
          // A misspelled field must be rejected, because dropping it would widen the filter.
          additionalProperties: false,
          properties: {
            ...FILTER_PROPERTIES,
            all: { type: 'boolean', description: 'true matches every recipient' },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['action', 'changed', 'messages'],
            properties: {
              action: { type: 'string' },
              changed: {
                type: 'integer',
                description:
                  'recipients changed, counting active ones whose change waits for the attempt',
              },
              messages: { type: 'integer', description: 'messages with a changed recipient' },
            },
          },
          ...errorResponses(400, 401, 403, 503),
        },
      },
    },
    async (request, reply) => {
      const { action } = request.params;
      const body = request.body ?? {};
      const fields = FILTER_FIELDS.filter((field) => body[field] !== undefined);
      if (fields.length === 0 && body.all !== true) {
        return reply
          .code(400)
          .send(
            errorBody(
              400,
              `body must set at least one of ${FILTER_FIELDS.join(', ')}, or "all": true to ` +
                'act on the whole spool',
            ),
          );
      }
      if (body.all === true && request.principal.role !== 'admin') {
        return reply
          .code(403)
          .send(errorBody(403, 'body/all needs an administrator token; filter by field instead'));
      }

      let filter: SpoolFilter;
      try {
        filter = parseFilter(body);
      } catch (error) {
        if (error instanceof FilterError) {
          return reply.code(400).send(errorBody(400, error.message));
        }
        throw error;
      }
      const scope = domainScope(request);
      if (scope !== undefined) {
        if (filter.domain !== undefined && filter.domain !== scope) {
          return reply.send({ action, changed: 0, messages: 0 });
        }
        filter.domain = scope;
      }

      const result = await runAction(request, broker, pool, action, filter);
      return reply.send({ action, changed: result.recipients, messages: result.messages });
    },
  );

  app.post<{ Params: { id: string; action: QueueAction } }>(
    '/messages/:id/:action',
    {
      schema: {
        summary: 'Apply an action to the recipients of one message',
        description: `${ACTION_DESCRIPTION} A member token acts on its own domain's recipients only.`,
        tags: ['messages'],
        params: {
          type: 'object',
          required: ['id', 'action'],
          properties: { ...MessageIdParamsSchema.properties, action: ActionParamSchema },
        },
        response: {
          200: {
            type: 'object',
            required: ['id', 'changed'],
            properties: {
              id: { type: 'string' },
              changed: {
                type: 'integer',
                description:
                  'recipients changed, counting active ones whose change waits for the attempt',
              },
            },
          },
          ...errorResponses(400, 401, 404, 503),
        },
      },
    },
    async (request, reply) => {
      const queueId = parseQueueId(request.params.id);
      if (!queueId) {
        return reply.code(400).send(invalidQueueIdBody(request.params.id));
      }
      const domain = domainScope(request);
      if (!(await getMessage(pool, queueId, domain))) {
        return reply.code(404).send(unknownMessageBody(queueId));
      }
      const result = await runAction(request, broker, pool, request.params.action, {
        queueId,
        domain,
      });
      return reply.send({ id: queueId, changed: result.recipients });
    },
  );
}
