/**
 * Periodic spool work besides scheduling: DSNs about recipients bounced by an administrator,
 * expiry at the end of the queue lifetime, delay warnings at the configured ages, probes of
 * next hops that do not answer, and removal of final messages after the retention. Each step
 * claims its rows with SKIP LOCKED, so several queue-store replicas can run it at once.
 */
import type { Broker } from '@secondary-mx/amqp';
import { encodeFrame, type ProbeJob, QUEUE } from '@secondary-mx/contracts';
import {
  claimDelayWarnings,
  claimDueProbes,
  claimPendingBounces,
  completeFinalMessages,
  expireRecipients,
  loadReportedMessages,
  type Pool,
  type PoolClient,
  type ProbeIntervals,
  pingDatabase,
  primaryHostsByDomain,
  purgeCompletedMessages,
  type ReportedRecipient,
  withTransaction,
} from '@secondary-mx/db';
import type { Logger } from '@secondary-mx/logger';
import { type BounceSettings, type DsnEvent, queueDsn } from './bounces.ts';
import { PassBackoff } from './pass-backoff.ts';

export interface MaintenanceOptions {
  pool: Pool;
  broker: Broker;
  logger: Logger;
  intervalMs: number;
  bounces: BounceSettings;
  delayWarningsMs: number[];
  retentionMs: number;
  probes: ProbeIntervals;
  /** Called once per DSN a committed transaction queued, for the metrics. */
  onDsnQueued?: (event: DsnEvent) => void;
  /** Called after DSNs were queued, so the scheduler sends them without waiting. */
  onQueued: () => void;
}

const BATCH = 500;
const RETENTION_EVERY_MS = 60_000;
/** A probe not run within this time is dropped by the worker; the next one replaces it. */
const PROBE_DEADLINE_MS = 30_000;
/** How long the ping after a failed step waits before PostgreSQL counts as unreachable. */
const PING_TIMEOUT_MS = 2000;

function groupByMessage(recipients: ReportedRecipient[]): Map<string, ReportedRecipient[]> {
  const groups = new Map<string, ReportedRecipient[]>();
  for (const recipient of recipients) {
    groups.set(recipient.queueId, [...(groups.get(recipient.queueId) ?? []), recipient]);
  }
  return groups;
}

export class Maintenance {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private lastRetention = 0;
  /** A run of sendPendingBounces started by requestBounces, and whether another is due. */
  private bounceRun: Promise<void> | undefined;
  private bouncesRequested = false;
  private readonly backoff: PassBackoff;

  constructor(private readonly options: MaintenanceOptions) {
    this.backoff = new PassBackoff(options.intervalMs);
  }

  start(): void {
    this.scheduleNext(this.options.intervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    await this.bounceRun;
  }

  private scheduleNext(delayMs: number): void {
    this.timer = setTimeout(() => {
      this.running = this.pass().then((retryInMs) => {
        this.running = undefined;
        if (!this.stopped) {
          this.scheduleNext(retryInMs ?? this.options.intervalMs);
        }
      });
    }, delayMs);
  }

  /**
   * Runs sendPendingBounces now, besides the periodic pass. A request that arrives during a
   * run starts one more run after it, so no bounce committed meanwhile waits for the interval.
   */
  requestBounces(): void {
    if (this.stopped) {
      return;
    }
    if (this.bounceRun) {
      this.bouncesRequested = true;
      return;
    }
    this.bounceRun = this.sendPendingBounces()
      .catch((error: unknown) => {
        this.options.logger.error(
          { err: error },
          'sending the DSNs of administrator bounces failed',
        );
      })
      .finally(() => {
        this.bounceRun = undefined;
        if (this.bouncesRequested) {
          this.bouncesRequested = false;
          this.requestBounces();
        }
      });
  }

  /**
   * Runs every step, each on its own. A step that fails while PostgreSQL does not reply to a ping
   * ends the pass, because the other steps would fail too: it logs one line and returns the
   * delay before the next pass. Otherwise it returns undefined.
   */
  async pass(): Promise<number | undefined> {
    const steps: [string, () => Promise<void>][] = [
      ['administrator bounces', () => this.sendPendingBounces()],
      ['expiry', () => this.expire()],
      ['delay warnings', () => this.warnDelays()],
      ['probes', () => this.probe()],
      ['retention', () => this.purge()],
    ];
    const { pool, logger } = this.options;
    for (const [name, step] of steps) {
      if (this.stopped) {
        return undefined;
      }
      try {
        await step();
      } catch (error) {
        if (!(await pingDatabase(pool, PING_TIMEOUT_MS))) {
          const { attempt, retryInMs } = this.backoff.failed();
          logger.error(
            { err: error, step: name, attempt, retryInMs },
            'maintenance pass failed, PostgreSQL unreachable, retrying',
          );
          return retryInMs;
        }
        logger.error({ err: error, step: name }, 'maintenance step failed');
      }
    }
    const failedPasses = this.backoff.succeeded();
    if (failedPasses > 0) {
      logger.info({ failedPasses }, 'maintenance passes work again');
    }
    return undefined;
  }

  /**
   * Reports one claimed batch: a DSN per message, inside the claiming transaction. Messages
   * whose recipients became final through the claim are completed after their DSN.
   */
  private async report(
    event: DsnEvent,
    claim: (client: PoolClient) => Promise<ReportedRecipient[]>,
  ): Promise<number> {
    const { pool, logger, bounces } = this.options;
    const queuedDsns: DsnEvent[] = [];
    const reported = await withTransaction(pool, async (client) => {
      const recipients = await claim(client);
      const groups = groupByMessage(recipients);
      const messages = await loadReportedMessages(client, [...groups.keys()]);
      for (const [queueId, group] of groups) {
        const message = messages.get(queueId);
        if (!message) {
          continue;
        }
        if (event === 'expired') {
          logger.child({ queueId }).info(
            {
              recipients: group.map((recipient) => recipient.address),
              kind: message.kind,
              dsnOf: message.dsnOf,
            },
            message.kind === 'dsn' ? 'DSN dropped: its lifetime ran out' : 'recipients expired',
          );
        }
        // queueDsn adds the queue id to its own log lines.
        if (await queueDsn(client, event, message, group, bounces, logger)) {
          queuedDsns.push(event);
        }
      }
      if (event !== 'delayed') {
        await completeFinalMessages(client, [...groups.keys()]);
      }
      return recipients.length;
    });
    for (const dsnEvent of queuedDsns) {
      this.options.onDsnQueued?.(dsnEvent);
    }
    return reported;
  }

  /** Queues the DSNs about recipients that an administrator bounced, then completes their messages. */
  async sendPendingBounces(): Promise<void> {
    let sent = 0;
    for (;;) {
      const claimed = await this.report('failed', (client) => claimPendingBounces(client, BATCH));
      sent += claimed;
      if (claimed < BATCH) {
        break;
      }
    }
    if (sent > 0) {
      this.options.onQueued();
    }
  }

  private async expire(): Promise<void> {
    while ((await this.report('expired', (client) => expireRecipients(client, BATCH))) === BATCH) {
      // A full batch means more may be due.
    }
  }

  private async warnDelays(): Promise<void> {
    const ages = this.options.delayWarningsMs;
    if (ages.length === 0) {
      return;
    }
    while (
      (await this.report('delayed', (client) => claimDelayWarnings(client, ages, BATCH))) === BATCH
    ) {
      // A full batch means more may be due.
    }
  }

  private async probe(): Promise<void> {
    const { pool, broker, logger, probes } = this.options;
    if (!broker.connected) {
      return;
    }
    const claimed = await claimDueProbes(pool, probes, BATCH);
    if (claimed.length === 0) {
      return;
    }
    const overrides = await primaryHostsByDomain(
      pool,
      claimed.map((probe) => probe.domain),
    );
    for (const probe of claimed) {
      const job: ProbeJob = {
        kind: 'probe',
        probeId: probe.probeId,
        domain: probe.domain,
        primaryHosts: overrides.get(probe.domain) ?? [],
        deadline: Date.now() + PROBE_DEADLINE_MS,
      };
      await broker.publish(QUEUE.deliveryJobs, encodeFrame(job));
      logger.debug({ domain: probe.domain, probeId: probe.probeId }, 'probe sent');
    }
  }

  private async purge(): Promise<void> {
    if (Date.now() - this.lastRetention < RETENTION_EVERY_MS) {
      return;
    }
    this.lastRetention = Date.now();
    let removed = 0;
    for (;;) {
      const batch = await purgeCompletedMessages(
        this.options.pool,
        this.options.retentionMs,
        BATCH,
      );
      removed += batch;
      if (batch < BATCH) {
        break;
      }
    }
    if (removed > 0) {
      this.options.logger.info({ messages: removed }, 'final messages removed after the retention');
    }
  }
}
