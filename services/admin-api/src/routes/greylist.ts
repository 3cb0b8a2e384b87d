/**
 * Greylist administration for administrators only: the state of one triplet and the static
 * whitelist. Every route is a greylist.admin call to the greylist service (greylist-admin.ts).
 */
import type { Broker } from '@secondary-mx/amqp';
import {
  GREYLIST_WHITELIST_KINDS,
  GreylistLookupReplySchema,
  type GreylistTripletState,
  GreylistWhitelistChangeReplySchema,
  type GreylistWhitelistEntry,
  type GreylistWhitelistKind,
  GreylistWhitelistListReplySchema,
} from '@secondary-mx/contracts';
import type { FastifyInstance, RouteGenericInterface } from 'fastify';
import { adminOnly } from '../auth.ts';
import { callGreylistAdmin } from '../greylist-admin.ts';
import { errorResponses } from '../schemas.ts';

const TAGS = ['greylist'];

const optionalTime = { type: 'string', format: 'date-time' } as const;

const TripletStateSchema = {
  type: 'object',
  required: [
    'state',
    'clientGroup',
    'sender',
    'recipient',
    'spf',
    'key',
    'groupKey',
    'groupPasses',
    'autoWhitelistAfter',
  ],
  properties: {
    state: {
      type: 'string',
      enum: ['unknown', 'waiting', 'passed', 'whitelisted'],
      description:
        '`unknown`: the next attempt is deferred as new. `waiting`: deferred until `passAfter`. ' +
        '`passed`: passes at once until `expiresAt`. `whitelisted`: passes, see `reason`',
    },
    reason: {
      type: 'string',
      description:
        'for `whitelisted`: `whitelisted-client`, `whitelisted-name`, `whitelisted-sender` or ' +
        '`auto-whitelisted` (the client group)',
    },
    whitelistEntry: {
      type: 'object',
      description: 'the static whitelist entry that matched',
      required: ['kind', 'value', 'source'],
      properties: {
        kind: { type: 'string', enum: [...GREYLIST_WHITELIST_KINDS] },
        value: { type: 'string' },
        source: { type: 'string', enum: ['setting', 'api'] },
      },
    },
    firstSeen: { ...optionalTime, description: 'first attempt' },
    passAfter: { ...optionalTime, description: 'earliest retry that passes' },
    lastPassed: { ...optionalTime, description: 'latest pass' },
    expiresAt: { ...optionalTime, description: 'when the record lapses' },
    clientGroup: {
      type: 'string',
      description: '`spf:<domain>`, `name:<organizational domain>` or `net:<cidr>`',
    },
    sender: { type: 'string', description: 'the sender as the key contains it, normalized' },
    recipient: { type: 'string' },
    spf: { type: 'string', description: "SPF result of the sender's domain for the client" },
    key: { type: 'string', description: 'Redis key of the triplet' },
    groupKey: { type: 'string', description: "Redis key of the client group's pass counter" },
    groupPasses: { type: 'integer', description: 'passes of the client group counted so far' },
    autoWhitelistAfter: {
      type: 'integer',
      description: 'counted passes after which the group passes at once; 0 for never',
    },
  },
} as const;

const WhitelistEntrySchema = {
  type: 'object',
  required: ['kind', 'value', 'note', 'createdAt', 'source'],
  properties: {
    kind: { type: 'string', enum: [...GREYLIST_WHITELIST_KINDS] },
    value: {
      type: 'string',
      description:
        'client: network in CIDR notation. name: suffix of forward-confirmed client names. ' +
        'sender: an address, or `@domain` for the domain and its subdomains',
    },
    note: { type: ['string', 'null'] },
    createdAt: {
      type: ['string', 'null'],
      format: 'date-time',
      description: 'null for entries from settings',
    },
    source: {
      type: 'string',
      enum: ['setting', 'api'],
      description: '`setting`: MX_GREYLIST_WHITELIST_*, removed only there',
    },
  },
} as const;

const KIND_AND_VALUE_DESCRIPTION =
  'client: an IP address or network (`192.0.2.7`, `192.0.2.0/24`, `2001:db8::/32`). ' +
  'name: a suffix of forward-confirmed client names (`relay.example` matches it and ' +
  '`out1.relay.example`). sender: an address (`alice@example.com`, which also matches its ' +
  'BATV, SRS and `+extension` forms) or `@example.com` for a domain and its subdomains.';

interface TripletQuery {
  client: string;
  sender: string;
  recipient: string;
  name?: string;
  helo?: string;
}

interface WhitelistBody {
  kind: GreylistWhitelistKind;
  value: string;
  note?: string;
}

function toEntryResponse(entry: GreylistWhitelistEntry) {
  return {
    kind: entry.kind,
    value: entry.value,
    note: entry.note ?? null,
    createdAt: entry.createdAt ?? null,
    source: entry.source,
  };
}

/** Removes the angle brackets of an address written as in SMTP, `<>` included. */
function unbracket(address: string): string {
  const trimmed = address.trim();
  return /^<.*>$/.test(trimmed) ? trimmed.slice(1, -1) : trimmed;
}

export function greylistRoutes(app: FastifyInstance, deps: { broker: Broker }): void {
  const { broker } = deps;

  app.get<{ Querystring: TripletQuery }>(
    '/greylist/triplets',
    {
      preHandler: adminOnly,
      schema: {
        summary: 'Show the greylist state of one triplet without recording an attempt',
        description:
          'The greylist service computes the key as a check would: client group (SPF of the ' +
          'sender domain, forward-confirmed name, network), normalized sender, recipient. ' +
          'Pass `name` for a client that has a forward-confirmed reverse DNS name, because ' +
          'the lookup does not resolve it.',
        tags: TAGS,
        querystring: {
          type: 'object',
          required: ['client', 'sender', 'recipient'],
          properties: {
            client: { type: 'string', minLength: 1, maxLength: 64, description: 'IP address' },
            sender: {
              type: 'string',
              maxLength: 322,
              description: 'envelope sender; empty or `<>` for the null sender',
            },
            recipient: { type: 'string', minLength: 1, maxLength: 322 },
            name: {
              type: 'string',
              minLength: 1,
              maxLength: 255,
              description: "the client's forward-confirmed reverse DNS name",
            },
            helo: { type: 'string', minLength: 1, maxLength: 255, description: 'EHLO name' },
          },
        },
        response: { 200: TripletStateSchema, ...errorResponses(400, 401, 403, 502, 503) },
      },
    },
    async (request, reply) => {
      const { client, sender, recipient, name, helo } = request.query;
      const result = await callGreylistAdmin(
        broker,
        request.log,
        {
          action: 'lookup',
          clientAddress: client.trim(),
          clientName: name,
          heloName: helo,
          sender: unbracket(sender),
          recipient: unbracket(recipient),
        },
        GreylistLookupReplySchema,
      );
      if (!result.ok) {
        return reply.code(result.body.statusCode).send(result.body);
      }
      const lookup: GreylistTripletState = result.reply.lookup;
      return reply.send(lookup);
    },
  );

  app.get<RouteGenericInterface>(
    '/greylist/whitelist',
    {
      preHandler: adminOnly,
      schema: {
        summary: 'List the static greylist whitelist: settings entries first',
        tags: TAGS,
        response: {
          200: {
            type: 'object',
            required: ['entries'],
            properties: { entries: { type: 'array', items: WhitelistEntrySchema } },
          },
          ...errorResponses(401, 403, 502, 503),
        },
      },
    },
    async (request, reply) => {
      const result = await callGreylistAdmin(
        broker,
        request.log,
        { action: 'whitelist.list' },
        GreylistWhitelistListReplySchema,
      );
      if (!result.ok) {
        return reply.code(result.body.statusCode).send(result.body);
      }
      return reply.send({ entries: result.reply.entries.map(toEntryResponse) });
    },
  );

  app.post<{ Body: WhitelistBody }>(
    '/greylist/whitelist',
    {
      preHandler: adminOnly,
      schema: {
        summary: 'Add a static whitelist entry; new checks on every replica use it within a second',
        description: `201 when added, 200 when already listed. ${KIND_AND_VALUE_DESCRIPTION}`,
        tags: TAGS,
        body: {
          type: 'object',
          required: ['kind', 'value'],
          additionalProperties: false,
          properties: {
            kind: { type: 'string', enum: [...GREYLIST_WHITELIST_KINDS] },
            value: { type: 'string', minLength: 1, maxLength: 320 },
            note: { type: 'string', maxLength: 200 },
          },
        },
        response: {
          200: WhitelistEntrySchema,
          201: WhitelistEntrySchema,
          ...errorResponses(400, 401, 403, 409, 502, 503),
        },
      },
    },
    async (request, reply) => {
      const { kind, value, note } = request.body;
      const result = await callGreylistAdmin(
        broker,
        request.log,
        { action: 'whitelist.add', kind, value, note },
        GreylistWhitelistChangeReplySchema,
      );
      if (!result.ok) {
        return reply.code(result.body.statusCode).send(result.body);
      }
      const { entry, changed } = result.reply;
      if (!changed) {
        return reply.send(toEntryResponse(entry));
      }
      request.log.info({ kind, value: entry.value }, 'greylist whitelist entry added');
      return reply.code(201).send(toEntryResponse(entry));
    },
  );

  // A wildcard, so a network such as 192.0.2.0/24 may be given with its slash unencoded.
  app.delete<{ Params: { kind: GreylistWhitelistKind; '*': string } }>(
    '/greylist/whitelist/:kind/*',
    {
      preHandler: adminOnly,
      schema: {
        summary: 'Remove a static whitelist entry that was added through the API',
        description:
          'The value may be written in any form that the entry was added in, URL-encoded. ' +
          'Entries from settings give 409.',
        tags: TAGS,
        params: {
          type: 'object',
          required: ['kind', '*'],
          properties: {
            kind: { type: 'string', enum: [...GREYLIST_WHITELIST_KINDS] },
            '*': { type: 'string', minLength: 1, maxLength: 320, description: 'the value' },
          },
        },
        response: {
          200: WhitelistEntrySchema,
          ...errorResponses(400, 401, 403, 404, 409, 502, 503),
        },
      },
    },
    async (request, reply) => {
      const { kind } = request.params;
      const value = request.params['*'];
      const result = await callGreylistAdmin(
        broker,
        request.log,
        { action: 'whitelist.remove', kind, value },
        GreylistWhitelistChangeReplySchema,
      );
      if (!result.ok) {
        return reply.code(result.body.statusCode).send(result.body);
      }
      request.log.info(
        { kind, value: result.reply.entry.value },
        'greylist whitelist entry removed',
      );
      return reply.send(toEntryResponse(result.reply.entry));
    },
  );
}
