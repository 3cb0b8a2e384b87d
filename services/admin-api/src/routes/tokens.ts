/**
 * Stored bearer tokens: administrators create admin or member tokens and revoke any; a member
 * token may create, list and revoke the tokens of its own domain, so members can rotate them.
 * A new token is returned once and only its hash is kept.
 */
import { normalizeDomain } from '@secondary-mx/address';
import {
  getToken,
  insertToken,
  listTokens,
  type Pool,
  type Queryable,
  revokeToken,
  type TokenRow,
} from '@secondary-mx/db';
import type { FastifyInstance } from 'fastify';
import { actorOf, canAccessDomain, domainScope, issueToken, TOKEN_ROLES } from '../auth.ts';
import { errorBody, invalidDomainBody, unknownDomainBody } from '../errors.ts';
import { errorResponses } from '../schemas.ts';

const TAGS = ['tokens'];

const TokenSchema = {
  type: 'object',
  required: ['id', 'role', 'domain', 'note', 'createdBy', 'createdAt', 'lastUsedAt', 'revokedAt'],
  properties: {
    id: { type: 'string', format: 'uuid' },
    role: { type: 'string', enum: [...TOKEN_ROLES] },
    domain: { type: ['string', 'null'], description: 'the only domain a member token acts on' },
    note: { type: ['string', 'null'] },
    createdBy: { type: 'string', description: '`admin` (MX_ADMIN_TOKEN) or `token:<id>`' },
    createdAt: { type: 'string', format: 'date-time' },
    lastUsedAt: { type: ['string', 'null'], format: 'date-time' },
    revokedAt: { type: ['string', 'null'], format: 'date-time' },
  },
} as const;

export const NewTokenSchema = {
  ...TokenSchema,
  required: [...TokenSchema.required, 'token'],
  properties: {
    ...TokenSchema.properties,
    token: { type: 'string', description: 'the bearer token; shown only in this reply' },
  },
} as const;

export function toTokenResponse(row: TokenRow) {
  return {
    id: row.id,
    role: row.role,
    domain: row.domain,
    note: row.note,
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
    lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
    revokedAt: row.revokedAt?.toISOString() ?? null,
  };
}

interface CreateBody {
  role: 'admin' | 'member';
  domain?: string;
  note?: string;
}

/** Creates a stored token and returns it with its secret, or undefined for an unknown domain. */
export async function createToken(
  db: Queryable,
  fields: {
    role: 'admin' | 'member';
    domain: string | null;
    note: string | null;
    createdBy: string;
  },
) {
  const issued = issueToken();
  const row = await insertToken(db, {
    id: issued.id,
    secretSha256: issued.secretSha256,
    ...fields,
  });
  return row ? { ...toTokenResponse(row), token: issued.token } : undefined;
}

export function tokenRoutes(app: FastifyInstance, deps: { pool: Pool }): void {
  const { pool } = deps;

  app.post<{ Body: CreateBody }>(
    '/tokens',
    {
      schema: {
        summary: 'Create a bearer token',
        description:
          'An administrator may create admin tokens and member tokens of any domain; a member ' +
          'token may create member tokens of its own domain only.',
        tags: TAGS,
        body: {
          type: 'object',
          required: ['role'],
          additionalProperties: false,
          properties: {
            role: { type: 'string', enum: [...TOKEN_ROLES] },
            domain: {
              type: 'string',
              minLength: 1,
              maxLength: 253,
              description: 'required for member',
            },
            note: { type: 'string', maxLength: 200 },
          },
        },
        response: { 201: NewTokenSchema, ...errorResponses(400, 401, 403, 404, 503) },
      },
    },
    async (request, reply) => {
      const { role, note } = request.body;
      let domain: string | null = null;
      if (role === 'member') {
        if (request.body.domain === undefined) {
          return reply.code(400).send(errorBody(400, 'body/domain is required for a member token'));
        }
        domain = normalizeDomain(request.body.domain) ?? null;
        if (!domain) {
          return reply.code(400).send(invalidDomainBody(request.body.domain));
        }
        if (!canAccessDomain(request, domain)) {
          return reply.code(404).send(unknownDomainBody(domain));
        }
      } else if (request.body.domain !== undefined) {
        return reply
          .code(400)
          .send(errorBody(400, 'body/domain must be left out for an admin token'));
      } else if (request.principal.role !== 'admin') {
        return reply
          .code(403)
          .send(errorBody(403, 'only an administrator may create admin tokens'));
      }

      const created = await createToken(pool, {
        role,
        domain,
        note: note ?? null,
        createdBy: actorOf(request.principal),
      });
      if (!created) {
        return reply.code(404).send(unknownDomainBody(domain ?? ''));
      }
      request.log.info({ tokenId: created.id, role, domain }, 'token created');
      return reply.code(201).send(created);
    },
  );

  app.get<{ Querystring: { domain?: string } }>(
    '/tokens',
    {
      schema: {
        summary: 'List tokens without their secrets, newest first',
        description: 'A member token sees the tokens of its own domain only.',
        tags: TAGS,
        querystring: {
          type: 'object',
          properties: { domain: { type: 'string', minLength: 1, maxLength: 253 } },
        },
        response: {
          200: {
            type: 'object',
            required: ['tokens'],
            properties: { tokens: { type: 'array', items: TokenSchema } },
          },
          ...errorResponses(400, 401, 503),
        },
      },
    },
    async (request, reply) => {
      let domain = domainScope(request);
      if (request.query.domain !== undefined) {
        const wanted = normalizeDomain(request.query.domain);
        if (!wanted) {
          return reply.code(400).send(invalidDomainBody(request.query.domain));
        }
        if (!canAccessDomain(request, wanted)) {
          return reply.send({ tokens: [] });
        }
        domain = wanted;
      }
      const rows = await listTokens(pool, domain);
      return reply.send({ tokens: rows.map(toTokenResponse) });
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/tokens/:id',
    {
      schema: {
        summary: 'Revoke a token; requests with it get 401 from now on',
        tags: TAGS,
        params: {
          type: 'object',
          required: ['id'],
          properties: { id: { type: 'string', format: 'uuid' } },
        },
        response: { 200: TokenSchema, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const existing = await getToken(pool, id);
      const scope = domainScope(request);
      if (!existing || (scope !== undefined && existing.domain !== scope)) {
        return reply.code(404).send(errorBody(404, `no token has id ${id}`));
      }
      const row = await revokeToken(pool, id);
      if (!row) {
        return reply.code(404).send(errorBody(404, `no token has id ${id}`));
      }
      request.log.info({ tokenId: id, by: actorOf(request.principal) }, 'token revoked');
      return reply.send(toTokenResponse(row));
    },
  );
}
