/**
 * Queue inspection: GET /api/messages (the spool, filtered and paged by queue id),
 * GET /api/messages/:id (one message with every delivery attempt) and GET /api/messages/:id/raw
 * (its bytes, administrators only).
 */
import { getMessage, getMessageBody, listMessages, type Pool } from '@secondary-mx/db';
import type { FastifyInstance } from 'fastify';
import { actorOf, adminOnly, domainScope } from '../auth.ts';
import { errorBody } from '../errors.ts';
import { errorResponses, MessageDetailSchema, MessageSchema } from '../schemas.ts';
import {
  FILTER_PROPERTIES,
  FilterError,
  type FilterFields,
  parseFilter,
  parseQueueId,
} from '../spool-filter.ts';
import { toMessageDetailResponse, toMessageResponse } from '../views.ts';

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

interface MessagesQuery extends FilterFields {
  limit: number;
  cursor?: string;
}

export const MessageIdParamsSchema = {
  type: 'object',
  required: ['id'],
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 64, description: 'queue id' },
  },
} as const;

export function invalidQueueIdBody(value: string) {
  return errorBody(
    400,
    `id ${JSON.stringify(value)} is not a queue id: 20 characters of Crockford base32`,
  );
}

export function unknownMessageBody(queueId: string) {
  return errorBody(404, `message ${queueId} is not in the queue`);
}

export function messageRoutes(app: FastifyInstance, deps: { pool: Pool }): void {
  const { pool } = deps;

  app.get<{ Querystring: MessagesQuery }>(
    '/messages',
    {
      schema: {
        summary: 'List spooled messages in arrival order',
        description:
          'A message is listed when any recipient matches the filter, and only the matching ' +
          'recipients are shown. Pass nextCursor as cursor to get the next page; messages ' +
          'stored or removed meanwhile do not make a page repeat or skip others. A member ' +
          "token sees its own domain's recipients only.",
        tags: ['messages'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            ...FILTER_PROPERTIES,
            limit: {
              type: 'integer',
              minimum: 1,
              maximum: MAX_PAGE_SIZE,
              default: DEFAULT_PAGE_SIZE,
            },
            cursor: {
              type: 'string',
              minLength: 1,
              maxLength: 64,
              description: 'nextCursor of the previous page',
            },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['messages', 'nextCursor'],
            properties: {
              messages: { type: 'array', items: MessageSchema },
              nextCursor: {
                type: ['string', 'null'],
                description: 'id of the last message when the page is full, else null',
              },
            },
          },
          ...errorResponses(400, 401, 503),
        },
      },
    },
    async (request, reply) => {
      const { limit, cursor } = request.query;
      let filter: ReturnType<typeof parseFilter>;
      try {
        filter = parseFilter(request.query);
      } catch (error) {
        if (error instanceof FilterError) {
          return reply.code(400).send(errorBody(400, error.message));
        }
        throw error;
      }

      // A cursor that is not a queue id would page from an arbitrary point, often past the end.
      const after = cursor === undefined ? undefined : parseQueueId(cursor);
      if (cursor !== undefined && after === undefined) {
        return reply
          .code(400)
          .send(
            errorBody(
              400,
              `cursor ${JSON.stringify(cursor)} is not a queue id: pass nextCursor of the previous page`,
            ),
          );
      }

      const scope = domainScope(request);
      if (scope !== undefined) {
        if (filter.domain !== undefined && filter.domain !== scope) {
          return reply.send({ messages: [], nextCursor: null });
        }
        filter.domain = scope;
      }

      const messages = await listMessages(pool, { ...filter, limit, after });
      const last = messages[messages.length - 1];
      const nextCursor = messages.length === limit && last ? last.id : null;
      return reply.send({ messages: messages.map(toMessageResponse), nextCursor });
    },
  );

  app.get<{ Params: { id: string } }>(
    '/messages/:id',
    {
      schema: {
        summary: 'Show one message with its recipients and every delivery attempt',
        description:
          "A member token sees the message only when it has a recipient in the member's " +
          'domain, and sees only those recipients.',
        tags: ['messages'],
        params: MessageIdParamsSchema,
        response: { 200: MessageDetailSchema, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request, reply) => {
      const queueId = parseQueueId(request.params.id);
      if (!queueId) {
        return reply.code(400).send(invalidQueueIdBody(request.params.id));
      }
      const message = await getMessage(pool, queueId, domainScope(request));
      if (!message) {
        return reply.code(404).send(unknownMessageBody(queueId));
      }
      return reply.send(toMessageDetailResponse(message));
    },
  );

  app.get<{ Params: { id: string } }>(
    '/messages/:id/raw',
    {
      preHandler: adminOnly,
      schema: {
        summary: 'Download the stored bytes of a message (administrators only)',
        description:
          'The message exactly as stored, with our Received: line first, as message/rfc822. ' +
          'Answers 410 once every recipient is final and the bytes were deleted.',
        tags: ['messages'],
        params: MessageIdParamsSchema,
        response: {
          200: {
            description: 'the message',
            content: { 'message/rfc822': { schema: { type: 'string', format: 'binary' } } },
          },
          ...errorResponses(400, 401, 403, 404, 410, 503),
        },
      },
    },
    async (request, reply) => {
      const queueId = parseQueueId(request.params.id);
      if (!queueId) {
        return reply.code(400).send(invalidQueueIdBody(request.params.id));
      }
      const body = await getMessageBody(pool, queueId);
      if (body === undefined) {
        return reply.code(404).send(unknownMessageBody(queueId));
      }
      if (body === null) {
        return reply
          .code(410)
          .send(
            errorBody(
              410,
              `message ${queueId} has no stored bytes: they are deleted once every recipient is final`,
            ),
          );
      }
      request.log.info(
        { queueId, size: body.length, actor: actorOf(request.principal) },
        'message bytes downloaded',
      );
      return reply
        .type('message/rfc822')
        .header('content-disposition', `attachment; filename="${queueId}.eml"`)
        .send(body);
    },
  );
}
