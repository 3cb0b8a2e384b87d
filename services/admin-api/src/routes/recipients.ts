/**
 * Recipient lists of member domains, which ingress enforces at RCPT time when the domain's
 * recipientCheck is `list`. Every change publishes `domains.changed`, so ingress reloads within
 * seconds.
 */
import {
  formatRecipientEntry,
  normalizeDomain,
  parseRecipientEntry,
  RecipientPatternError,
} from '@secondary-mx/address';
import type { Broker } from '@secondary-mx/amqp';
import {
  addDomainRecipient,
  listDomainRecipients,
  type Pool,
  removeDomainRecipient,
  replaceDomainRecipients,
} from '@secondary-mx/db';
import type { FastifyInstance } from 'fastify';
import { adminOnly } from '../auth.ts';
import { publishControlEvent } from '../control-events.ts';
import { type ErrorBody, errorBody, invalidDomainBody, unknownDomainBody } from '../errors.ts';
import {
  DomainParamsSchema,
  errorResponses,
  MAX_RECIPIENT_ENTRIES,
  RecipientEntrySchema,
  RecipientListSchema,
} from '../schemas.ts';

interface DomainParams {
  domain: string;
}

interface EntryParams extends DomainParams {
  recipient: string;
}

const TAGS = ['domains'];

function listBody(domain: string, localParts: readonly string[]) {
  return {
    domain,
    recipients: localParts.map((localPart) => formatRecipientEntry(localPart, domain)),
  };
}

/**
 * Parses entries into local-part patterns, dropping repeats. Throws a RecipientPatternError
 * that names the first invalid entry as `recipients[i]`.
 */
function parseEntries(entries: readonly string[], domain: string): string[] {
  const localParts = new Set<string>();
  entries.forEach((entry, index) => {
    try {
      localParts.add(parseRecipientEntry(entry, domain));
    } catch (error) {
      if (error instanceof RecipientPatternError) {
        throw new RecipientPatternError(`recipients[${index}] ${error.message}`);
      }
      throw error;
    }
  });
  return [...localParts];
}

/**
 * Parses the domain of the route and one recipient entry of that domain. Returns the domain
 * and the entry's local-part pattern, or the 400 body that names what is invalid.
 */
function parseEntryRequest(
  domainParam: string,
  entry: string,
): { domain: string; localPart: string } | { invalid: ErrorBody } {
  const domain = normalizeDomain(domainParam);
  if (!domain) {
    return { invalid: invalidDomainBody(domainParam) };
  }
  try {
    return { domain, localPart: parseRecipientEntry(entry, domain) };
  } catch (error) {
    if (!(error instanceof RecipientPatternError)) {
      throw error;
    }
    return { invalid: errorBody(400, `recipient ${error.message}`) };
  }
}

export function recipientRoutes(app: FastifyInstance, deps: { pool: Pool; broker: Broker }): void {
  const { pool, broker } = deps;

  app.get<{ Params: DomainParams }>(
    '/domains/:domain/recipients',
    {
      preHandler: adminOnly,
      schema: {
        summary: "Show a domain's recipient list",
        tags: TAGS,
        params: DomainParamsSchema,
        response: { 200: RecipientListSchema, ...errorResponses(400, 401, 403, 404, 503) },
      },
    },
    async (request, reply) => {
      const domain = normalizeDomain(request.params.domain);
      if (!domain) {
        return reply.code(400).send(invalidDomainBody(request.params.domain));
      }

      const localParts = await listDomainRecipients(pool, domain);
      if (!localParts) {
        return reply.code(404).send(unknownDomainBody(domain));
      }
      return reply.send(listBody(domain, localParts));
    },
  );

  app.put<{ Params: DomainParams; Body: { recipients: string[] } }>(
    '/domains/:domain/recipients',
    {
      preHandler: adminOnly,
      schema: {
        summary: "Replace a domain's recipient list",
        description:
          'Used when recipientCheck is `list`. Postmaster is accepted whether it is listed or not.',
        tags: TAGS,
        params: DomainParamsSchema,
        body: {
          type: 'object',
          required: ['recipients'],
          properties: {
            recipients: {
              type: 'array',
              maxItems: MAX_RECIPIENT_ENTRIES,
              items: RecipientEntrySchema,
            },
          },
        },
        response: { 200: RecipientListSchema, ...errorResponses(400, 401, 403, 404, 503) },
      },
    },
    async (request, reply) => {
      const domain = normalizeDomain(request.params.domain);
      if (!domain) {
        return reply.code(400).send(invalidDomainBody(request.params.domain));
      }

      let localParts: string[];
      try {
        localParts = parseEntries(request.body.recipients, domain);
      } catch (error) {
        if (!(error instanceof RecipientPatternError)) {
          throw error;
        }
        return reply.code(400).send(errorBody(400, error.message));
      }

      if (!(await replaceDomainRecipients(pool, domain, localParts))) {
        return reply.code(404).send(unknownDomainBody(domain));
      }

      request.log.info({ domain, entries: localParts.length }, 'recipient list replaced');
      await publishControlEvent(broker, request.log, { type: 'domains.changed', domain });
      return reply.send(listBody(domain, (await listDomainRecipients(pool, domain)) ?? []));
    },
  );

  app.post<{ Params: DomainParams; Body: { recipient: string } }>(
    '/domains/:domain/recipients',
    {
      preHandler: adminOnly,
      schema: {
        summary: "Add one entry to a domain's recipient list",
        description: 'Answers 201 when the entry was added and 200 when it was already listed.',
        tags: TAGS,
        params: DomainParamsSchema,
        body: {
          type: 'object',
          required: ['recipient'],
          properties: { recipient: RecipientEntrySchema },
        },
        response: {
          200: RecipientListSchema,
          201: RecipientListSchema,
          ...errorResponses(400, 401, 403, 404, 409, 503),
        },
      },
    },
    async (request, reply) => {
      const parsed = parseEntryRequest(request.params.domain, request.body.recipient);
      if ('invalid' in parsed) {
        return reply.code(400).send(parsed.invalid);
      }
      const { domain, localPart } = parsed;

      const outcome = await addDomainRecipient(pool, domain, localPart, MAX_RECIPIENT_ENTRIES);
      if (outcome === 'unknown-domain') {
        return reply.code(404).send(unknownDomainBody(domain));
      }
      if (outcome === 'full') {
        return reply
          .code(409)
          .send(
            errorBody(
              409,
              `the recipient list of ${domain} already has ${MAX_RECIPIENT_ENTRIES} entries: remove some or use a pattern`,
            ),
          );
      }

      const entry = formatRecipientEntry(localPart, domain);
      if (outcome === 'added') {
        request.log.info({ domain, entry }, 'recipient entry added');
        await publishControlEvent(broker, request.log, { type: 'domains.changed', domain });
      }
      const localParts = (await listDomainRecipients(pool, domain)) ?? [];
      return reply.code(outcome === 'added' ? 201 : 200).send(listBody(domain, localParts));
    },
  );

  app.delete<{ Params: EntryParams }>(
    '/domains/:domain/recipients/:recipient',
    {
      preHandler: adminOnly,
      schema: {
        summary: "Remove one entry from a domain's recipient list",
        description: 'The entry is written as when it was added, URL-encoded: `sales-*@`.',
        tags: TAGS,
        params: {
          type: 'object',
          required: ['domain', 'recipient'],
          properties: {
            domain: DomainParamsSchema.properties.domain,
            recipient: RecipientEntrySchema,
          },
        },
        response: { 200: RecipientListSchema, ...errorResponses(400, 401, 403, 404, 503) },
      },
    },
    async (request, reply) => {
      const parsed = parseEntryRequest(request.params.domain, request.params.recipient);
      if ('invalid' in parsed) {
        return reply.code(400).send(parsed.invalid);
      }
      const { domain, localPart } = parsed;

      const entry = formatRecipientEntry(localPart, domain);
      if (!(await removeDomainRecipient(pool, domain, localPart))) {
        const known = await listDomainRecipients(pool, domain);
        const message = known
          ? `${entry} is not in the recipient list of ${domain}`
          : unknownDomainBody(domain).message;
        return reply.code(404).send(errorBody(404, message));
      }

      request.log.info({ domain, entry }, 'recipient entry removed');
      await publishControlEvent(broker, request.log, { type: 'domains.changed', domain });
      return reply.send(listBody(domain, (await listDomainRecipients(pool, domain)) ?? []));
    },
  );
}
