/**
 * Consumes delivery.results. A delivery result is recorded in one transaction with the DSNs
 * it causes and the probe state of its destination; a probe result reschedules the
 * destination when its next hop answered. The result message is acknowledged only after the
 * commit; a failure requeues it.
 */
import type { ConsumeMessage } from '@secondary-mx/amqp';
import { type DeliveryResult, type ProbeResult, ResultSchema } from '@secondary-mx/contracts';
import {
  applyDeliveryOutcomes,
  type Backoff,
  type ChangedRecipient,
  completeFinalMessages,
  loadReportedMessages,
  markReachable,
  markUnreachable,
  type Pool,
  type ProbeIntervals,
  withTransaction,
} from '@secondary-mx/db';
import type { Logger } from '@secondary-mx/logger';
import { type BounceSettings, type DsnEvent, queueDsn } from './bounces.ts';

export interface ResultsOptions {
  pool: Pool;
  logger: Logger;
  backoff: Backoff;
  probes: ProbeIntervals;
  bounces: BounceSettings;
  /** Called after each commit: a job slot is free, or recipients became due. */
  onRecorded: () => void;
  /** Called once per DSN the committed transaction queued, for the metrics. */
  onDsnQueued?: (event: DsnEvent) => void;
}

/**
 * Returns what the outcomes show about the destination's next hop:
 * - `reachable`: it took or judged a message, so recipients waiting for it are made due;
 * - `unreachable`: no server replied at all, so probes watch for its return;
 * - `unknown`: the worker handed every recipient back untried, or a server replied only that
 *   it is unavailable (421, or 4xx before RCPT). A probe's EHLO would not show when such a
 *   server takes mail again, so its recipients wait for their backoff or a later success.
 */
function nextHopState(result: DeliveryResult): 'reachable' | 'unreachable' | 'unknown' {
  const attempted = result.outcomes.filter((outcome) => outcome.failureKind !== 'notAttempted');
  const answered = attempted.some(
    (outcome) => outcome.status !== 'deferred' || outcome.failureKind === 'reply',
  );
  if (answered) {
    return 'reachable';
  }
  const silent = attempted.some((outcome) => outcome.remoteMta === undefined);
  return silent ? 'unreachable' : 'unknown';
}

function groupByMessage(recipients: ChangedRecipient[]): Map<string, ChangedRecipient[]> {
  const groups = new Map<string, ChangedRecipient[]>();
  for (const recipient of recipients) {
    const group = groups.get(recipient.queueId) ?? [];
    group.push(recipient);
    groups.set(recipient.queueId, group);
  }
  return groups;
}

async function recordDelivery(options: ResultsOptions, result: DeliveryResult): Promise<void> {
  const { pool, logger } = options;
  const log = logger.child({ domain: result.domain, leaseId: result.leaseId });
  const queuedDsns: DsnEvent[] = [];
  const changed = await withTransaction(pool, async (client) => {
    const changed = await applyDeliveryOutcomes(client, result, options.backoff);
    const events: [DsnEvent, ChangedRecipient[]][] = [
      [
        'failed',
        // Recipients bounced by an administrator get their DSN from the maintenance pass.
        changed.filter((recipient) => recipient.state === 'failed' && !recipient.bouncePending),
      ],
      [
        'relayed',
        // RFC 3461 section 6.2.3: a next hop without DSN support cannot report success, so we
        // report the relay ourselves when the sender asked for NOTIFY=SUCCESS.
        changed.filter(
          (recipient) => recipient.state === 'delivered' && recipient.remoteDsn === false,
        ),
      ],
    ];
    const reportedIds = events.flatMap(([, recipients]) =>
      recipients.map((recipient) => recipient.queueId),
    );
    const messages = await loadReportedMessages(client, [...new Set(reportedIds)]);
    for (const [event, recipients] of events) {
      for (const [queueId, group] of groupByMessage(recipients)) {
        const message = messages.get(queueId);
        if (message && (await queueDsn(client, event, message, group, options.bounces, log))) {
          queuedDsns.push(event);
        }
      }
    }
    const nextHop = nextHopState(result);
    if (nextHop === 'reachable') {
      await markReachable(client, result.domain);
    } else if (nextHop === 'unreachable') {
      const failure = result.outcomes.find(
        (outcome) => outcome.status === 'deferred' && outcome.failureKind !== 'notAttempted',
      );
      await markUnreachable(
        client,
        [result.domain],
        options.probes,
        failure ? { reply: failure.reply, remoteMta: failure.remoteMta } : undefined,
      );
    }
    const queueIds = [...new Set(result.outcomes.map((outcome) => outcome.queueId))];
    await completeFinalMessages(client, queueIds);
    return changed;
  });
  for (const event of queuedDsns) {
    options.onDsnQueued?.(event);
  }
  const recorded = new Set(changed.map((recipient) => recipient.recipientId));
  for (const outcome of result.outcomes) {
    if (!recorded.has(outcome.recipientId)) {
      log.warn(
        { queueId: outcome.queueId, recipientId: outcome.recipientId, status: outcome.status },
        'stale delivery result ignored: the lease was taken back',
      );
    }
  }
}

async function recordProbe(options: ResultsOptions, result: ProbeResult): Promise<void> {
  const log = options.logger.child({ domain: result.domain, probeId: result.probeId });
  if (!result.ok) {
    log.debug({ reply: result.reply }, 'next hop still unreachable');
    return;
  }
  const rescheduled = await markReachable(options.pool, result.domain);
  log.info(
    { remoteMta: result.remoteMta, recipients: rescheduled },
    'next hop answers again, mail scheduled',
  );
}

export function createResultsHandler(options: ResultsOptions) {
  const { logger } = options;
  return async (message: ConsumeMessage): Promise<void> => {
    let json: unknown;
    try {
      json = JSON.parse(message.content.toString('utf8'));
    } catch (error) {
      logger.error({ err: error }, 'delivery result is not JSON, dropped');
      return;
    }
    const parsed = ResultSchema.safeParse(json);
    if (!parsed.success) {
      logger.error({ issues: parsed.error.issues }, 'delivery result is invalid, dropped');
      return;
    }
    if (parsed.data.kind === 'probe') {
      await recordProbe(options, parsed.data);
    } else {
      await recordDelivery(options, parsed.data);
    }
    options.onRecorded();
  };
}
