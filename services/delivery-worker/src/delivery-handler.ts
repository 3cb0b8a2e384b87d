/**
 * Runs one delivery job. It cuts the payload into its messages, resolves the domain's next hops
 * and delivers the messages over one SMTP connection. Then it logs one line per recipient and one
 * per job, and publishes one result for every recipient of every message. The returned promise
 * resolves only after the connection is closed and the result is confirmed, so the job is
 * acknowledged only then.
 */
import type { DeliveryJob, DeliveryResult } from '@secondary-mx/contracts';
import type { Logger } from '@secondary-mx/logger';
import type { CompletedLeases } from './completed-leases.ts';
import type { WorkerObserver } from './metrics.ts';
import type { NextHopResolver } from './next-hop.ts';
import { judgeAllLocally, type RecipientVerdict } from './recipient-verdicts.ts';
import { localVerdict, type ReplyVerdict } from './reply-classification.ts';
import {
  type JobContext,
  type JobDelivery,
  type MessageOutcome,
  type MessagePart,
  type SmtpDelivery,
  STOPPING_TEXT,
} from './smtp-delivery.ts';

export interface DeliveryHandlerOptions {
  nextHops: NextHopResolver;
  smtp: SmtpDelivery;
  completed: CompletedLeases;
  /** Publishes a result and resolves once RabbitMQ confirmed it. It may retry until `retryUntil`. */
  publishResult: (result: DeliveryResult, retryUntil: number) => Promise<void>;
  logger: Logger;
  metrics?: Pick<WorkerObserver, 'countAttempt' | 'observeJob'>;
}

/**
 * Cuts the payload into the job's messages by their sizes. Returns undefined when the sizes do
 * not add up to the payload length, because then no boundary can be trusted.
 */
export function splitPayload(job: DeliveryJob, payload: Buffer): MessagePart[] | undefined {
  const total = job.messages.reduce((sum, message) => sum + message.size, 0);
  if (total !== payload.length) {
    return undefined;
  }
  const parts: MessagePart[] = [];
  let offset = 0;
  for (const message of job.messages) {
    parts.push({ message, payload: payload.subarray(offset, offset + message.size) });
    offset += message.size;
  }
  return parts;
}

/** Gives every recipient of the job the same verdict, timed from the start of the job. */
function deferJob(job: DeliveryJob, verdict: ReplyVerdict, startedAt: number): JobDelivery {
  const durationMs = Date.now() - startedAt;
  const outcomes = job.messages.map((message) => ({
    message,
    verdicts: judgeAllLocally([message], verdict),
    durationMs,
  }));
  return { outcomes, relays: [] };
}

/** Logs one line per recipient attempt (the record stage), never with message content. */
function logRecipients(logger: Logger, job: DeliveryJob, outcomes: MessageOutcome[]): void {
  for (const outcome of outcomes) {
    for (const verdict of outcome.verdicts) {
      logger.info(
        {
          leaseId: job.leaseId,
          queueId: verdict.queueId,
          recipientId: verdict.recipientId,
          recipient: verdict.address,
          domain: job.domain,
          relay: verdict.relay ?? 'none',
          status: verdict.status,
          reply: verdict.reply,
          failureKind: verdict.failureKind,
          durationMs: outcome.durationMs,
        },
        `recipient ${verdict.status}`,
      );
    }
  }
}

function logJob(logger: Logger, job: DeliveryJob, delivery: JobDelivery, durationMs: number) {
  const verdicts = delivery.outcomes.flatMap((outcome) => outcome.verdicts);
  const count = (status: RecipientVerdict['status']) =>
    verdicts.filter((verdict) => verdict.status === status).length;
  logger.info(
    {
      leaseId: job.leaseId,
      domain: job.domain,
      messages: job.messages.length,
      recipients: verdicts.length,
      delivered: count('delivered'),
      deferred: count('deferred'),
      failed: count('failed'),
      relay: delivery.relays.length > 0 ? delivery.relays.join(', ') : 'none',
      durationMs,
    },
    'delivery job finished',
  );
}

function toResult(job: DeliveryJob, attemptedAt: number, delivery: JobDelivery): DeliveryResult {
  return {
    kind: 'delivery',
    leaseId: job.leaseId,
    domain: job.domain,
    attemptedAt,
    outcomes: delivery.outcomes.flatMap((outcome) =>
      outcome.verdicts.map((verdict) => ({
        recipientId: verdict.recipientId,
        queueId: verdict.queueId,
        status: verdict.status,
        reply: verdict.reply,
        enhancedCode: verdict.enhancedCode,
        remoteMta: verdict.remoteMta,
        failureKind: verdict.failureKind,
        remoteDsn: verdict.remoteDsn,
      })),
    ),
  };
}

export function createDeliveryHandler(
  options: DeliveryHandlerOptions,
): (job: DeliveryJob, payload: Buffer) => Promise<void> {
  const { nextHops, smtp, completed, publishResult, logger } = options;

  const deliver = async (
    job: DeliveryJob,
    parts: MessagePart[],
    context: JobContext,
  ): Promise<JobDelivery> => {
    try {
      if (smtp.isDraining) {
        return deferJob(job, localVerdict('notAttempted', STOPPING_TEXT), context.startedAt);
      }
      if (!smtp.fitsInLease(context.startedAt, context.leaseUntil)) {
        const left = context.leaseUntil - context.startedAt;
        const text = `not attempted: the lease has ${left} ms left, less than a message may take`;
        return deferJob(job, localVerdict('notAttempted', text), context.startedAt);
      }
      // DNS counts against the first message's time, like the connect that follows it.
      const deadline = smtp.deadlineFrom(context.startedAt, context.leaseUntil);
      const plan = await nextHops.resolveBefore(job.domain, job.primaryHosts, deadline);
      if (!plan.ok) {
        return deferJob(job, plan.verdict, context.startedAt);
      }
      return await smtp.deliverJob(context, parts, plan.hops);
    } catch (error) {
      logger.error(
        { err: error, leaseId: job.leaseId, domain: job.domain },
        'delivery failed unexpectedly, deferring the job',
      );
      const verdict = localVerdict(
        'internalError',
        'delivery failed in the delivery worker, will retry',
      );
      return deferJob(job, verdict, context.startedAt);
    }
  };

  return async (job, payload) => {
    const queueIds = job.messages.map((message) => message.queueId);
    const parts = splitPayload(job, payload);
    if (!parts) {
      const messageBytes = job.messages.reduce((sum, message) => sum + message.size, 0);
      logger.error(
        {
          leaseId: job.leaseId,
          domain: job.domain,
          queueIds,
          payloadBytes: payload.length,
          messageBytes,
        },
        'delivery job payload length does not match the sum of its message sizes, dropped',
      );
      return;
    }
    const startedAt = Date.now();
    if (job.leaseUntil <= startedAt) {
      logger.warn(
        { leaseId: job.leaseId, domain: job.domain, queueIds },
        'lease expired before delivery, job dropped',
      );
      return;
    }
    const earlier = completed.find(job.leaseId, startedAt);
    if (earlier) {
      logger.info(
        { leaseId: job.leaseId, domain: job.domain, queueIds },
        'job already delivered, publishing its result again',
      );
      await publishResult(earlier, job.leaseUntil);
      return;
    }
    const context: JobContext = {
      leaseId: job.leaseId,
      domain: job.domain,
      startedAt,
      leaseUntil: job.leaseUntil,
    };
    const delivery = await deliver(job, parts, context);
    const durationMs = Date.now() - startedAt;
    logRecipients(logger, job, delivery.outcomes);
    logJob(logger, job, delivery, durationMs);
    const result = toResult(job, startedAt, delivery);
    for (const outcome of result.outcomes) {
      options.metrics?.countAttempt(outcome.status, outcome.failureKind);
    }
    options.metrics?.observeJob(durationMs);
    completed.remember(job.leaseId, job.leaseUntil, result);
    await publishResult(result, job.leaseUntil);
  };
}
