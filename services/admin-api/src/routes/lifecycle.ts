/**
 * The lifecycle of a member domain: approval, suspension, removal and the history of these
 * changes. Every change and its domain event are written in one transaction, and each is
 * announced with a domains.changed control event so ingress reloads at once.
 */
import { normalizeDomain } from '@secondary-mx/address';
import type { Broker } from '@secondary-mx/amqp';
import type { DomainState } from '@secondary-mx/contracts';
import {
  countActiveMemberTokens,
  type DomainAction,
  type DomainRow,
  getDomain,
  insertDomainEvent,
  listDomainEvents,
  lockDomain,
  type Pool,
  type PoolClient,
  setDomainState,
  withTransaction,
} from '@secondary-mx/db';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { actorOf, adminOnly, canAccessDomain } from '../auth.ts';
import { publishControlEvent } from '../control-events.ts';
import { removeDomain } from '../domain-removal.ts';
import { errorBody, invalidDomainBody, unknownDomainBody } from '../errors.ts';
import {
  DomainEventSchema,
  DomainParamsSchema,
  DomainSchema,
  errorResponses,
  MAX_REASON_LENGTH,
  ReasonBodySchema,
} from '../schemas.ts';
import type { RouteSettings } from '../settings.ts';
import { toDomainEventResponse, toDomainResponse } from '../views.ts';
import { createToken, NewTokenSchema } from './tokens.ts';

interface DomainParams {
  domain: string;
}

interface ReasonBody {
  reason?: string;
}

const WAITING_CHOICES = ['refuse', 'bounce', 'drop'] as const;
type WaitingChoice = (typeof WAITING_CHOICES)[number];

interface RemoveQuery {
  waiting: WaitingChoice;
  reason?: string;
}

const TAGS = ['domains'];

/** A state change: from which states it is allowed, and the state it leads to. */
interface Transition {
  action: DomainAction;
  from: readonly DomainState[];
  to: DomainState;
}

const APPROVE: Transition = { action: 'approve', from: ['pending', 'suspended'], to: 'approved' };
const SUSPEND: Transition = { action: 'suspend', from: ['approved'], to: 'suspended' };

type TransitionResult<T> =
  | { outcome: 'changed'; row: DomainRow; extra: T }
  | { outcome: 'not-found' }
  | { outcome: 'conflict'; state: DomainState };

/**
 * Applies a transition and records its event in one transaction; `alsoDo` runs in the same
 * transaction after the change.
 */
async function applyTransition<T>(
  pool: Pool,
  domain: string,
  transition: Transition,
  event: { actor: string; reason: string | null },
  alsoDo: (client: PoolClient) => Promise<T>,
): Promise<TransitionResult<T>> {
  return withTransaction(pool, async (client) => {
    const current = await lockDomain(client, domain);
    if (!current) {
      return { outcome: 'not-found' };
    }
    if (!transition.from.includes(current.state)) {
      return { outcome: 'conflict', state: current.state };
    }
    const row = await setDomainState(client, domain, transition.to);
    await insertDomainEvent(client, {
      domain,
      actor: event.actor,
      action: transition.action,
      fromState: current.state,
      toState: transition.to,
      reason: event.reason,
    });
    return { outcome: 'changed', row, extra: await alsoDo(client) };
  });
}

/** Returns the trimmed reason, or null when none was given. */
function reasonOf(text: string | undefined): string | null {
  const trimmed = text?.trim();
  return trimmed ? trimmed : null;
}

/** Parses the :domain parameter; replies 400 and returns undefined when it is not a domain. */
async function domainParam(
  request: FastifyRequest<{ Params: DomainParams }>,
  reply: FastifyReply,
): Promise<string | undefined> {
  const domain = normalizeDomain(request.params.domain);
  if (!domain) {
    await reply.code(400).send(invalidDomainBody(request.params.domain));
  }
  return domain;
}

const ApproveResponseSchema = {
  type: 'object',
  required: ['domain', 'dnsRecord', 'memberToken'],
  properties: {
    domain: DomainSchema,
    dnsRecord: {
      type: 'string',
      description: 'the MX record the member publishes for us, such as `@ MX 200 mx2.example.net.`',
    },
    memberToken: {
      ...NewTokenSchema,
      type: ['object', 'null'],
      description:
        'a new member token of the domain, shown only here; null when the domain already has ' +
        'a member token that is not revoked',
    },
  },
} as const;

const RemoveResponseSchema = {
  type: 'object',
  required: ['domain', 'removed', 'bounced', 'dropped'],
  properties: {
    domain: { type: 'string' },
    removed: { type: 'boolean', enum: [true] },
    bounced: {
      type: 'integer',
      description: 'undelivered recipients bounced, whose senders get a DSN from queue-store',
    },
    dropped: { type: 'integer', description: 'undelivered recipients deleted without a DSN' },
  },
} as const;

export function lifecycleRoutes(
  app: FastifyInstance,
  deps: { pool: Pool; broker: Broker; settings: RouteSettings },
): void {
  const { pool, broker, settings } = deps;
  const dnsRecord = `@ MX 200 ${settings.MX_HOSTNAME}.`;

  app.post<{ Params: DomainParams; Body: ReasonBody | undefined }>(
    '/domains/:domain/approve',
    {
      preHandler: adminOnly,
      schema: {
        summary: 'Approve a pending or suspended domain: it is relayed from now on',
        description:
          'Returns the MX record the member publishes for us and, unless the domain already has ' +
          'an active member token, a new member token. An approved domain gets 409.',
        tags: TAGS,
        params: DomainParamsSchema,
        body: ReasonBodySchema,
        response: { 200: ApproveResponseSchema, ...errorResponses(400, 401, 403, 404, 409, 503) },
      },
    },
    async (request, reply) => {
      const domain = await domainParam(request, reply);
      if (!domain) {
        return reply;
      }
      const actor = actorOf(request.principal);
      const result = await applyTransition(
        pool,
        domain,
        APPROVE,
        { actor, reason: reasonOf(request.body?.reason) },
        async (client) => {
          if ((await countActiveMemberTokens(client, domain)) > 0) {
            return null;
          }
          const token = await createToken(client, {
            role: 'member',
            domain,
            note: 'issued on approval',
            createdBy: actor,
          });
          return token ?? null;
        },
      );
      if (result.outcome === 'not-found') {
        return reply.code(404).send(unknownDomainBody(domain));
      }
      if (result.outcome === 'conflict') {
        return reply.code(409).send(errorBody(409, `domain ${domain} is already approved`));
      }

      request.log.info(
        { domain, actor, memberTokenId: result.extra?.id ?? null },
        'domain approved',
      );
      await publishControlEvent(broker, request.log, { type: 'domains.changed', domain });
      return reply.send({
        domain: toDomainResponse(result.row),
        dnsRecord,
        memberToken: result.extra,
      });
    },
  );

  app.post<{ Params: DomainParams; Body: ReasonBody | undefined }>(
    '/domains/:domain/suspend',
    {
      preHandler: adminOnly,
      schema: {
        summary: 'Suspend an approved domain',
        description:
          'ingress answers `450 4.7.1` to its recipients from now on, so senders keep the mail ' +
          'and reach the primary MX. Mail that already waits here is still delivered, and ' +
          'flush and ETRN still work. Only an approved domain can be suspended; others get 409.',
        tags: TAGS,
        params: DomainParamsSchema,
        body: ReasonBodySchema,
        response: { 200: DomainSchema, ...errorResponses(400, 401, 403, 404, 409, 503) },
      },
    },
    async (request, reply) => {
      const domain = await domainParam(request, reply);
      if (!domain) {
        return reply;
      }
      const actor = actorOf(request.principal);
      const result = await applyTransition(
        pool,
        domain,
        SUSPEND,
        { actor, reason: reasonOf(request.body?.reason) },
        async () => undefined,
      );
      if (result.outcome === 'not-found') {
        return reply.code(404).send(unknownDomainBody(domain));
      }
      if (result.outcome === 'conflict') {
        return reply
          .code(409)
          .send(
            errorBody(
              409,
              `domain ${domain} is ${result.state}: only an approved domain can be suspended`,
            ),
          );
      }

      request.log.info({ domain, actor }, 'domain suspended');
      await publishControlEvent(broker, request.log, { type: 'domains.changed', domain });
      return reply.send(toDomainResponse(result.row));
    },
  );

  app.delete<{ Params: DomainParams; Querystring: RemoveQuery; Body: ReasonBody | undefined }>(
    '/domains/:domain',
    {
      preHandler: adminOnly,
      schema: {
        summary: 'Remove a domain in any state',
        description:
          'Its recipient list and member tokens are deleted, its domain events are kept. ' +
          'Recipients not delivered yet (queued, deferred, hold, active) decide with ' +
          '`waiting`: `refuse` (default) answers 409 while there are any, `bounce` fails them ' +
          'with `554 5.0.0` and queue-store sends their senders a DSN, `drop` deletes them ' +
          'without a DSN. A recipient in a delivery attempt is bounced when the attempt ends, ' +
          'unless it delivers the message. The reason may be given in the body or as `?reason=`.',
        tags: TAGS,
        params: DomainParamsSchema,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            waiting: { type: 'string', enum: [...WAITING_CHOICES], default: 'refuse' },
            reason: { type: 'string', maxLength: MAX_REASON_LENGTH },
          },
        },
        body: ReasonBodySchema,
        response: { 200: RemoveResponseSchema, ...errorResponses(400, 401, 403, 404, 409, 503) },
      },
    },
    async (request, reply) => {
      const domain = await domainParam(request, reply);
      if (!domain) {
        return reply;
      }
      const actor = actorOf(request.principal);
      const waiting = request.query.waiting;
      const result = await removeDomain(pool, domain, {
        waiting,
        actor,
        reason: reasonOf(request.body?.reason ?? request.query.reason),
      });
      if (result.outcome === 'not-found') {
        return reply.code(404).send(unknownDomainBody(domain));
      }
      if (result.outcome === 'mail-waiting') {
        return reply
          .code(409)
          .send(
            errorBody(
              409,
              `${result.waiting} recipients of ${domain} are not delivered yet: flush the domain and retry once they are, or remove it with ?waiting=bounce or ?waiting=drop`,
            ),
          );
      }

      request.log.info(
        { domain, actor, waiting, bounced: result.bounced, dropped: result.dropped },
        'domain removed',
      );
      await publishControlEvent(broker, request.log, { type: 'domains.changed', domain });
      if (result.bounced > 0) {
        // queue-store sends the DSNs at once instead of at its next maintenance pass.
        await publishControlEvent(broker, request.log, { type: 'queue.changed' });
      }
      return reply.send({
        domain,
        removed: true,
        bounced: result.bounced,
        dropped: result.dropped,
      });
    },
  );

  app.get<{ Params: DomainParams }>(
    '/domains/:domain/events',
    {
      schema: {
        summary: "List a domain's lifecycle changes, oldest first",
        description:
          'An administrator sees every event, also those of a removed domain and of earlier ' +
          'registrations of the name. A member token sees the events since its domain was ' +
          'last requested.',
        tags: TAGS,
        params: DomainParamsSchema,
        response: {
          200: {
            type: 'object',
            required: ['events'],
            properties: { events: { type: 'array', items: DomainEventSchema } },
          },
          ...errorResponses(400, 401, 404, 503),
        },
      },
    },
    async (request, reply) => {
      const domain = await domainParam(request, reply);
      if (!domain) {
        return reply;
      }
      if (!canAccessDomain(request, domain)) {
        return reply.code(404).send(unknownDomainBody(domain));
      }
      let events = await listDomainEvents(pool, domain);
      if (request.principal.role === 'member') {
        const lastRequest = events.findLastIndex((event) => event.action === 'request');
        events = events.slice(Math.max(0, lastRequest));
      }
      if (events.length === 0 && !(await getDomain(pool, domain))) {
        return reply.code(404).send(unknownDomainBody(domain));
      }
      return reply.send({ events: events.map(toDomainEventResponse) });
    },
  );
}
