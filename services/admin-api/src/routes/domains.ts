/** Member domains: requests, the next-hop override and RCPT policy, listing. */

import { AddressError, normalizeDomain, parseMailbox } from '@secondary-mx/address';
import type { Broker } from '@secondary-mx/amqp';
import {
  DOMAIN_STATES,
  type DomainState,
  RECIPIENT_CHECKS,
  type RecipientCheck,
} from '@secondary-mx/contracts';
import {
  type DomainChanges,
  getDomain,
  insertDomain,
  insertDomainEvent,
  listDomains,
  type Pool,
  updateDomain,
  withTransaction,
} from '@secondary-mx/db';
import type { FastifyInstance } from 'fastify';
import { actorOf, adminOnly, canAccessDomain, domainScope } from '../auth.ts';
import { publishControlEvent } from '../control-events.ts';
import { errorBody, invalidDomainBody, unknownDomainBody } from '../errors.ts';
import { normalizePrimaryHosts, PrimaryHostError } from '../primary-hosts.ts';
import {
  DomainParamsSchema,
  DomainSchema,
  errorResponses,
  MAX_CONTACT_LENGTH,
  MAX_MEMBER_NUMBER_LENGTH,
  MAX_NOTE_LENGTH,
  MAX_PRIMARY_HOSTS,
  MAX_REASON_LENGTH,
} from '../schemas.ts';
import type { RouteSettings } from '../settings.ts';
import { toDomainResponse } from '../views.ts';

interface DomainParams {
  domain: string;
}

interface DomainRequestBody {
  domain: string;
  memberNumber: string;
  contact?: string;
  note?: string;
}

interface DomainPatchBody {
  primaryHosts?: string[];
  recipientCheck?: RecipientCheck;
  localPartCaseSensitive?: boolean;
  greylist?: boolean;
  reason?: string;
}

const PATCH_FIELDS = ['primaryHosts', 'recipientCheck', 'localPartCaseSensitive', 'greylist'];

/** Body fields besides the settings: the reason recorded in the domain's history. */
const PATCH_EXTRA_FIELDS = ['reason'];

/** The settings a member token may change on its own domain. */
const MEMBER_PATCH_FIELDS = ['greylist'];

interface ListQuery {
  state?: DomainState;
}

const TAGS = ['domains'];

/** Returns the contact in the form stored, or the reason it is invalid. */
function normalizeContact(contact: string): { address: string } | { problem: string } {
  try {
    const { localPart, domain } = parseMailbox(contact.trim());
    return { address: `${localPart}@${domain}` };
  } catch (error) {
    if (error instanceof AddressError) {
      return { problem: error.message };
    }
    throw error;
  }
}

export function domainRoutes(
  app: FastifyInstance,
  deps: { pool: Pool; broker: Broker; settings: RouteSettings },
): void {
  const { pool, broker, settings } = deps;
  const memberNumberPattern = settings.MX_MEMBER_NUMBER_PATTERN;

  app.post<{ Body: DomainRequestBody }>(
    '/domains',
    {
      preHandler: adminOnly,
      schema: {
        summary: 'File a request for a domain, which starts in state pending',
        description: 'The request is recorded as the first domain event.',
        tags: TAGS,
        body: {
          type: 'object',
          required: ['domain', 'memberNumber'],
          additionalProperties: false,
          properties: {
            domain: { type: 'string', minLength: 1, maxLength: 253, description: 'IDN allowed' },
            memberNumber: {
              type: 'string',
              minLength: 1,
              maxLength: MAX_MEMBER_NUMBER_LENGTH,
              description: `must match MX_MEMBER_NUMBER_PATTERN (here ${memberNumberPattern.source}) after surrounding spaces are trimmed`,
            },
            contact: {
              type: 'string',
              minLength: 1,
              maxLength: MAX_CONTACT_LENGTH,
              description: "email address of the member's contact",
            },
            note: { type: 'string', maxLength: MAX_NOTE_LENGTH },
          },
        },
        response: { 201: DomainSchema, ...errorResponses(400, 401, 403, 409, 503) },
      },
    },
    async (request, reply) => {
      const domain = normalizeDomain(request.body.domain);
      if (!domain) {
        return reply.code(400).send(invalidDomainBody(request.body.domain));
      }

      const memberNumber = request.body.memberNumber.trim();
      if (!memberNumberPattern.test(memberNumber)) {
        return reply
          .code(400)
          .send(
            errorBody(
              400,
              `body/memberNumber ${JSON.stringify(memberNumber)} does not match MX_MEMBER_NUMBER_PATTERN (${memberNumberPattern.source})`,
            ),
          );
      }

      let contact: string | null = null;
      if (request.body.contact !== undefined) {
        const normalized = normalizeContact(request.body.contact);
        if ('problem' in normalized) {
          return reply
            .code(400)
            .send(
              errorBody(
                400,
                `body/contact ${JSON.stringify(request.body.contact)} is not a valid email address: ${normalized.problem}`,
              ),
            );
        }
        contact = normalized.address;
      }
      const note = request.body.note?.trim() || null;

      const actor = actorOf(request.principal);
      const row = await withTransaction(pool, async (client) => {
        const inserted = await insertDomain(client, { name: domain, memberNumber, contact, note });
        if (inserted) {
          await insertDomainEvent(client, {
            domain,
            actor,
            action: 'request',
            fromState: null,
            toState: 'pending',
            reason: null,
          });
        }
        return inserted;
      });
      if (!row) {
        return reply.code(409).send(errorBody(409, `domain ${domain} is already registered`));
      }

      request.log.info({ domain, memberNumber, actor }, 'domain requested');
      return reply
        .code(201)
        .header('Location', `/api/domains/${domain}`)
        .send(toDomainResponse(row));
    },
  );

  app.patch<{ Params: DomainParams; Body: DomainPatchBody }>(
    '/domains/:domain',
    {
      schema: {
        summary:
          'Change the next-hop override, the recipient check or the greylist switch of a domain',
        description: `Fields left out keep their value. At least one of ${PATCH_FIELDS.join(', ')} is required. Each change is recorded in the domain's events. A member token may change greylist only.`,
        tags: TAGS,
        params: DomainParamsSchema,
        body: {
          type: 'object',
          properties: {
            primaryHosts: {
              type: 'array',
              maxItems: MAX_PRIMARY_HOSTS,
              items: { type: 'string', minLength: 1, maxLength: 300 },
              description:
                '`host` or `host:port`, where host is a DNS name, an IPv4 address or a bracketed IPv6 address; empty clears the override',
            },
            recipientCheck: {
              type: 'string',
              enum: [...RECIPIENT_CHECKS],
              description:
                '`none` accepts every local part, `list` only those in the recipient list, ' +
                '`verify` asks the primary with MAIL FROM:<> and RCPT TO; postmaster is always accepted',
            },
            localPartCaseSensitive: {
              type: 'boolean',
              description: 'match recipient-list entries case-sensitively (default false)',
            },
            greylist: {
              type: 'boolean',
              description: "false skips the greylist check for the domain's recipients",
            },
            reason: {
              type: 'string',
              maxLength: MAX_REASON_LENGTH,
              description: "why, recorded with the change in the domain's events",
            },
          },
        },
        response: { 200: DomainSchema, ...errorResponses(400, 401, 403, 404, 503) },
      },
    },
    async (request, reply) => {
      const domain = normalizeDomain(request.params.domain);
      if (!domain) {
        return reply.code(400).send(invalidDomainBody(request.params.domain));
      }

      if (!canAccessDomain(request, domain)) {
        return reply.code(404).send(unknownDomainBody(domain));
      }

      const body = request.body ?? {};
      // Checked here rather than with additionalProperties, so that the reply lists the fields
      // that can be changed.
      const unknownField = Object.keys(body).find(
        (field) => !PATCH_FIELDS.includes(field) && !PATCH_EXTRA_FIELDS.includes(field),
      );
      if (unknownField !== undefined) {
        return reply
          .code(400)
          .send(
            errorBody(
              400,
              `body/${unknownField} is not a domain setting: use ${PATCH_FIELDS.join(', ')}`,
            ),
          );
      }

      const memberField = Object.keys(body).find(
        (field) => !MEMBER_PATCH_FIELDS.includes(field) && !PATCH_EXTRA_FIELDS.includes(field),
      );
      if (request.principal.role === 'member' && memberField !== undefined) {
        return reply
          .code(403)
          .send(errorBody(403, `body/${memberField} can be changed by an administrator only`));
      }

      const changes: DomainChanges = {};
      if (body.primaryHosts !== undefined) {
        try {
          changes.primaryHosts = normalizePrimaryHosts(body.primaryHosts);
        } catch (error) {
          if (!(error instanceof PrimaryHostError)) {
            throw error;
          }
          return reply.code(400).send(errorBody(400, error.message));
        }
      }
      if (body.recipientCheck !== undefined) {
        changes.recipientCheck = body.recipientCheck;
      }
      if (body.localPartCaseSensitive !== undefined) {
        changes.localPartCaseSensitive = body.localPartCaseSensitive;
      }
      if (body.greylist !== undefined) {
        changes.greylist = body.greylist;
      }
      if (Object.keys(changes).length === 0) {
        return reply
          .code(400)
          .send(errorBody(400, `body must set at least one of ${PATCH_FIELDS.join(', ')}`));
      }

      const row = await updateDomain(pool, domain, changes, {
        actor: actorOf(request.principal),
        reason: body.reason?.trim() || null,
      });
      if (!row) {
        return reply.code(404).send(unknownDomainBody(domain));
      }

      request.log.info({ domain, ...changes }, 'domain settings changed');
      await publishControlEvent(broker, request.log, { type: 'domains.changed', domain });
      return reply.send(toDomainResponse(row));
    },
  );

  app.get<{ Querystring: ListQuery }>(
    '/domains',
    {
      schema: {
        summary: 'List the domains, optionally only those in one state',
        description: 'A member token sees its own domain only.',
        tags: TAGS,
        querystring: {
          type: 'object',
          properties: { state: { type: 'string', enum: [...DOMAIN_STATES] } },
        },
        response: {
          200: {
            type: 'object',
            required: ['domains'],
            properties: { domains: { type: 'array', items: DomainSchema } },
          },
          ...errorResponses(400, 401, 503),
        },
      },
    },
    async (request, reply) => {
      const scope = domainScope(request);
      const rows = (await listDomains(pool, request.query.state)).filter(
        (row) => scope === undefined || row.name === scope,
      );
      return reply.send({ domains: rows.map(toDomainResponse) });
    },
  );

  app.get<{ Params: DomainParams }>(
    '/domains/:domain',
    {
      schema: {
        summary: 'Show one domain',
        tags: TAGS,
        params: DomainParamsSchema,
        response: { 200: DomainSchema, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request, reply) => {
      const domain = normalizeDomain(request.params.domain);
      if (!domain) {
        return reply.code(400).send(invalidDomainBody(request.params.domain));
      }

      const row = canAccessDomain(request, domain) ? await getDomain(pool, domain) : undefined;
      if (!row) {
        return reply.code(404).send(unknownDomainBody(domain));
      }
      return reply.send(toDomainResponse(row));
    },
  );
}
