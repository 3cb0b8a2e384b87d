/** GET /api/messages: the spool, filtered by domain and recipient state, paged by queue id. */
import { normalizeDomain } from '@secondary-mx/address';
import { RECIPIENT_STATES, type RecipientState } from '@secondary-mx/contracts';
import { listMessages, type Pool } from '@secondary-mx/db';
import type { FastifyInstance } from 'fastify';
import { domainScope } from '../auth.ts';
import { invalidDomainBody } from '../errors.ts';
import { errorResponses, MessageSchema } from '../schemas.ts';
import { toMessageResponse } from '../views.ts';

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

interface MessagesQuery {
  domain?: string;
  state?: RecipientState;
  limit: number;
  cursor?: string;
}

export function messageRoutes(app: FastifyInstance, deps: { pool: Pool }): void {
  app.get<{ Querystring: MessagesQuery }>(
    '/messages',
    {
      schema: {
        summary: 'List spooled messages in arrival order',
        description:
          'With a domain or state filter, a message is listed when any recipient matches, and only ' +
          'the matching recipients are shown. Pass nextCursor as cursor to get the next page.',
        tags: ['messages'],
        querystring: {
          type: 'object',
          properties: {
            domain: { type: 'string', minLength: 1, maxLength: 253 },
            state: { type: 'string', enum: [...RECIPIENT_STATES] },
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
      const { state, limit, cursor } = request.query;
      let domain: string | undefined;
      if (request.query.domain !== undefined) {
        domain = normalizeDomain(request.query.domain);
        if (!domain) {
          return reply.code(400).send(invalidDomainBody(request.query.domain));
        }
      }

      const scope = domainScope(request);
      if (scope !== undefined) {
        if (domain !== undefined && domain !== scope) {
          return reply.send({ messages: [], nextCursor: null });
        }
        domain = scope;
      }

      const messages = await listMessages(deps.pool, { domain, state, limit, after: cursor });
      const last = messages[messages.length - 1];
      const nextCursor = messages.length === limit && last ? last.id : null;
      return reply.send({ messages: messages.map(toMessageResponse), nextCursor });
    },
  );
}
