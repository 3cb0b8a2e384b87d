/**
 * Handles one delivery job from RabbitMQ: decodes and checks it, delivers the message, logs one
 * line per recipient and publishes the result. The handler resolves only after the result is
 * confirmed, so the job is acknowledged only then. A job it cannot act on is dropped (the
 * handler resolves), because queue-store schedules its recipients again when the lease runs out.
 */
import {
  type DeliveryJob,
  DeliveryJobSchema,
  type DeliveryResult,
  decodeFrame,
} from '@secondary-mx/contracts';
import type { Logger } from '@secondary-mx/logger';
import type { CompletedLeases } from './completed-leases.ts';
import type { NextHopPlan, NextHopResolver } from './next-hop.ts';
import { judgeAllLocally, type RecipientVerdict } from './recipient-verdicts.ts';
import { localVerdict } from './reply-classification.ts';
import type { SmtpDelivery } from './smtp-delivery.ts';

export interface JobHandlerOptions {
  nextHops: NextHopResolver;
  smtp: SmtpDelivery;
  completed: CompletedLeases;
  /** Publishes a result and resolves once RabbitMQ confirmed it; may retry until `leaseUntil`. */
  publishResult: (result: DeliveryResult, leaseUntil: number) => Promise<void>;
  logger: Logger;
  deliveryTimeoutMs: number;
}

interface DecodedJob {
  job: DeliveryJob;
  payload: Buffer;
}

function decodeJob(content: Buffer, logger: Logger): DecodedJob | undefined {
  let frame: ReturnType<typeof decodeFrame>;
  try {
    frame = decodeFrame(content);
  } catch (error) {
    logger.error(
      { err: error, bytes: content.length },
      'delivery job is not a valid frame, dropped',
    );
    return undefined;
  }
  const parsed = DeliveryJobSchema.safeParse(frame.header);
  if (!parsed.success) {
    const { queueId, leaseId } = (frame.header ?? {}) as { queueId?: unknown; leaseId?: unknown };
    logger.error(
      { issues: parsed.error.issues, queueId, leaseId },
      'delivery job header is invalid, dropped',
    );
    return undefined;
  }
  return { job: parsed.data, payload: frame.payload };
}

/** Logs one line per recipient attempt (the record stage), never with message content. */
function logVerdicts(
  logger: Logger,
  job: DeliveryJob,
  verdicts: RecipientVerdict[],
  durationMs: number,
): void {
  for (const verdict of verdicts) {
    logger.info(
      {
        queueId: job.queueId,
        recipientId: verdict.recipientId,
        recipient: verdict.address,
        domain: job.domain,
        relay: verdict.relay ?? 'none',
        status: verdict.status,
        reply: verdict.reply,
        durationMs,
      },
      `recipient ${verdict.status}`,
    );
  }
}

/** Resolves the next hops, or returns a 4.4.3 failure when DNS is still busy at the deadline. */
async function resolveBefore(
  nextHops: NextHopResolver,
  job: DeliveryJob,
  deadline: number,
): Promise<NextHopPlan> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<NextHopPlan>((resolve) => {
    timer = setTimeout(
      () => {
        const verdict = localVerdict('dnsFailed', `DNS lookups for ${job.domain} timed out`);
        resolve({ ok: false, verdict });
      },
      Math.max(0, deadline - Date.now()),
    );
  });
  try {
    return await Promise.race([nextHops.resolve(job.domain, job.primaryHosts), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

function toResult(
  job: DeliveryJob,
  attemptedAt: number,
  verdicts: RecipientVerdict[],
): DeliveryResult {
  return {
    leaseId: job.leaseId,
    queueId: job.queueId,
    domain: job.domain,
    attemptedAt,
    outcomes: verdicts.map((verdict) => ({
      recipientId: verdict.recipientId,
      status: verdict.status,
      reply: verdict.reply,
      enhancedCode: verdict.enhancedCode,
      remoteMta: verdict.remoteMta,
    })),
  };
}

export function createJobHandler(options: JobHandlerOptions): (content: Buffer) => Promise<void> {
  const { nextHops, smtp, completed, publishResult, logger, deliveryTimeoutMs } = options;

  const deliver = async (
    job: DeliveryJob,
    payload: Buffer,
    deadline: number,
  ): Promise<RecipientVerdict[]> => {
    try {
      const plan = await resolveBefore(nextHops, job, deadline);
      if (!plan.ok) {
        return judgeAllLocally(job.recipients, plan.verdict);
      }
      return await smtp.deliver(job, payload, plan.hops, deadline);
    } catch (error) {
      logger.error(
        { err: error, queueId: job.queueId, domain: job.domain },
        'delivery failed unexpectedly, deferring',
      );
      return judgeAllLocally(
        job.recipients,
        'internalError',
        'delivery failed in the delivery worker, will retry',
      );
    }
  };

  return async (content) => {
    const decoded = decodeJob(content, logger);
    if (!decoded) {
      return;
    }
    const { job, payload } = decoded;
    const startedAt = Date.now();
    if (job.leaseUntil <= startedAt) {
      logger.warn(
        { queueId: job.queueId, leaseId: job.leaseId, domain: job.domain },
        'lease expired before delivery, job dropped',
      );
      return;
    }
    const earlier = completed.find(job.leaseId, startedAt);
    if (earlier) {
      logger.info(
        { queueId: job.queueId, leaseId: job.leaseId },
        'job already delivered, publishing its result again',
      );
      await publishResult(earlier, job.leaseUntil);
      return;
    }
    // A delivery that outlives its lease would race a new lease of the same recipients.
    const deadline = Math.min(startedAt + deliveryTimeoutMs, job.leaseUntil);
    const verdicts = await deliver(job, payload, deadline);
    logVerdicts(logger, job, verdicts, Date.now() - startedAt);
    const result = toResult(job, startedAt, verdicts);
    completed.remember(job.leaseId, job.leaseUntil, result);
    await publishResult(result, job.leaseUntil);
  };
}
