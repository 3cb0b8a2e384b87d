/**
 * The scheduler: leases due recipients and publishes them as delivery jobs, each up to
 * MX_MESSAGES_PER_CONNECTION messages for one domain, at most MX_DESTINATION_CONCURRENCY jobs
 * per domain at a time. It runs a pass every MX_SCHEDULER_INTERVAL, at once when kicked (new mail, a
 * flush), and back to back while passes come back full.
 *
 * A job that cannot be published has its lease handed back. A job lost after publishing (in
 * the broker or a worker) strands nothing: its recipients are reclaimed when the lease runs out.
 * A failed pass, as while PostgreSQL is down, delays the next one with a backoff (PassBackoff).
 */
import type { Broker } from '@secondary-mx/amqp';
import { type DeliveryJob, encodeFrame, QUEUE } from '@secondary-mx/contracts';
import {
  type LeasedJob,
  leaseDueJobs,
  loadBodies,
  type Pool,
  primaryHostsByDomain,
  reclaimExpiredLeases,
  releaseLease,
} from '@secondary-mx/db';
import type { Logger } from '@secondary-mx/logger';
import { PassBackoff } from './pass-backoff.ts';

export interface SchedulerOptions {
  pool: Pool;
  broker: Broker;
  logger: Logger;
  intervalMs: number;
  batch: number;
  leaseMs: number;
  messagesPerJob: number;
  jobsPerDomain: number;
}

/** Outcome of a pass: whether it leased a full batch, and the retry delay after a failure. */
interface PassOutcome {
  full: boolean;
  retryInMs?: number;
}

/** Most message bytes leased per pass; bounds the memory of one pass. */
const MAX_PASS_BYTES = 64 * 1024 * 1024;
/** Delay before a lease handed back after a failed publish is tried again. */
const REPUBLISH_DELAY_MS = 5000;
/**
 * Shortest time between the starts of two passes caused by new mail. Under a stream of new
 * mail each message kicks, so this bounds the passes to a few per second however fast mail
 * arrives, at the cost of up to this much delay before new mail is leased. Kicks that free job
 * slots (recorded results, flushes) are not delayed, so a draining destination never idles.
 */
const KICK_GAP_MS = 100;

export class Scheduler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private kicked = false;
  private kickedUrgently = false;
  private stopped = false;
  private lastPassAt = 0;
  /** When the pending timer fires, in epoch milliseconds. */
  private timerAt = Number.POSITIVE_INFINITY;
  private readonly backoff: PassBackoff;

  constructor(private readonly options: SchedulerOptions) {
    this.backoff = new PassBackoff(options.intervalMs);
  }

  start(): void {
    this.schedule(0);
  }

  /**
   * Runs a pass as soon as the current one is done: at once when urgent (a job slot was freed
   * or recipients were made due), else no sooner than KICK_GAP_MS after the last pass started.
   */
  kick(urgent = false): void {
    if (this.stopped) {
      return;
    }
    if (this.running) {
      this.kicked = true;
      this.kickedUrgently ||= urgent;
      return;
    }
    const delay = urgent ? 0 : this.kickDelay();
    if (Date.now() + delay < this.timerAt) {
      this.schedule(delay);
    }
  }

  private kickDelay(): number {
    return Math.max(0, this.lastPassAt + KICK_GAP_MS - Date.now());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timerAt = Date.now() + delayMs;
    this.timer = setTimeout(() => {
      this.timerAt = Number.POSITIVE_INFINITY;
      this.lastPassAt = Date.now();
      this.running = this.pass()
        .then(
          (full) => this.passSucceeded(full),
          (error: unknown) => this.passFailed(error),
        )
        .then(({ full, retryInMs }) => {
          this.running = undefined;
          if (this.stopped) {
            return;
          }
          const kicked = this.kicked;
          const urgent = this.kickedUrgently;
          this.kicked = false;
          this.kickedUrgently = false;
          if (retryInMs !== undefined) {
            this.schedule(retryInMs);
          } else if (full || urgent) {
            this.schedule(0);
          } else {
            this.schedule(kicked ? this.kickDelay() : this.options.intervalMs);
          }
        });
    }, delayMs);
  }

  private passSucceeded(full: boolean): PassOutcome {
    const failures = this.backoff.succeeded();
    if (failures > 0) {
      this.options.logger.info({ failedPasses: failures }, 'scheduler passes work again');
    }
    return { full };
  }

  private passFailed(error: unknown): PassOutcome {
    const { attempt, retryInMs } = this.backoff.failed();
    this.options.logger.error(
      { err: error, attempt, retryInMs },
      'scheduler pass failed, retrying',
    );
    return { full: false, retryInMs };
  }

  /** Runs one pass; resolves true when it leased a full batch, so more may be due. */
  async pass(): Promise<boolean> {
    const { pool, broker, logger } = this.options;
    if (!broker.connected) {
      return false;
    }
    const reclaimed = await reclaimExpiredLeases(pool);
    if (reclaimed > 0) {
      logger.warn({ recipients: reclaimed }, 'leases ran out, recipients scheduled again');
    }
    const jobs = await leaseDueJobs(pool, {
      limit: this.options.batch,
      leaseMs: this.options.leaseMs,
      maxBytes: MAX_PASS_BYTES,
      messagesPerJob: this.options.messagesPerJob,
      jobsPerDomain: this.options.jobsPerDomain,
    });
    if (jobs.length === 0) {
      return false;
    }
    const queueIds = jobs.flatMap((job) => job.messages.map((message) => message.queueId));
    const bodies = await loadBodies(pool, queueIds);
    const overrides = await primaryHostsByDomain(pool, [...new Set(jobs.map((job) => job.domain))]);
    await Promise.all(jobs.map((job) => this.publishJob(job, bodies, overrides.get(job.domain))));
    const leased = jobs.reduce(
      (sum, job) =>
        sum + job.messages.reduce((count, message) => count + message.recipients.length, 0),
      0,
    );
    logger.debug({ jobs: jobs.length, recipients: leased }, 'scheduler pass');
    return leased >= this.options.batch;
  }

  private async publishJob(job: LeasedJob, bodies: Map<string, Buffer>, primaryHosts?: string[]) {
    const { pool, broker, logger } = this.options;
    const log = logger.child({ domain: job.domain, leaseId: job.leaseId });
    const missing = job.messages.filter((message) => !bodies.has(message.queueId));
    if (missing.length > 0) {
      // NOTE: bytes are deleted only when every recipient is final, so this means a lost
      // body; the recipients wait and are retried rather than being failed by the scheduler.
      log.error(
        { queueIds: missing.map((message) => message.queueId) },
        'message bytes missing for a lease',
      );
      await releaseLease(pool, job.leaseId, this.options.leaseMs);
      return;
    }
    const payloads = job.messages.map((message) => bodies.get(message.queueId) as Buffer);
    const header: DeliveryJob = {
      kind: 'delivery',
      leaseId: job.leaseId,
      leaseUntil: job.leaseUntil.getTime(),
      domain: job.domain,
      primaryHosts: primaryHosts ?? [],
      messages: job.messages.map((message, index) => ({
        queueId: message.queueId,
        sender: message.sender,
        recipients: message.recipients.map((recipient) => ({
          id: recipient.id,
          address: recipient.address,
          ...(recipient.notify
            ? {
                notify:
                  recipient.notify as DeliveryJob['messages'][number]['recipients'][number]['notify'],
              }
            : {}),
          ...(recipient.orcpt ? { orcpt: recipient.orcpt } : {}),
        })),
        ...(message.ret ? { ret: message.ret } : {}),
        ...(message.envid ? { envid: message.envid } : {}),
        bodyType: message.bodyType === '8BITMIME' ? '8BITMIME' : '7BIT',
        smtpUtf8: message.smtpUtf8,
        size: (payloads[index] as Buffer).length,
      })),
    };
    try {
      await broker.publish(QUEUE.deliveryJobs, encodeFrame(header, Buffer.concat(payloads)));
    } catch (error) {
      log.warn({ err: error }, 'publishing a delivery job failed, lease handed back');
      await releaseLease(pool, job.leaseId, REPUBLISH_DELAY_MS);
    }
  }
}
