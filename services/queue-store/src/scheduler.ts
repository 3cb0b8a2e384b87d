/**
 * The scheduler: leases due recipients and publishes them as delivery jobs, one job per message
 * and domain. It runs a pass every MX_SCHEDULER_INTERVAL, at once when kicked (new mail, a
 * flush), and back to back while passes come back full.
 *
 * A job that cannot be published has its lease handed back. A job lost after publishing (in
 * the broker or a worker) strands nothing: its recipients are reclaimed when the lease runs out.
 */
import type { Broker } from '@secondary-mx/amqp';
import { type DeliveryJob, encodeFrame, QUEUE } from '@secondary-mx/contracts';
import {
  type LeasedGroup,
  leaseDueRecipients,
  loadBodies,
  type Pool,
  primaryHostsByDomain,
  reclaimExpiredLeases,
  releaseLease,
} from '@secondary-mx/db';
import type { Logger } from '@secondary-mx/logger';

export interface SchedulerOptions {
  pool: Pool;
  broker: Broker;
  logger: Logger;
  intervalMs: number;
  batch: number;
  leaseMs: number;
}

/** Most message bytes leased per pass; bounds the memory of one pass. */
const MAX_PASS_BYTES = 64 * 1024 * 1024;
/** Delay before a lease handed back after a failed publish is tried again. */
const REPUBLISH_DELAY_MS = 5000;

export class Scheduler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private kicked = false;
  private stopped = false;

  constructor(private readonly options: SchedulerOptions) {}

  start(): void {
    this.schedule(0);
  }

  /** Runs a pass as soon as the current one is done. */
  kick(): void {
    if (this.stopped) {
      return;
    }
    if (this.running) {
      this.kicked = true;
      return;
    }
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.running = this.pass()
        .catch((error: unknown) => {
          this.options.logger.error({ err: error }, 'scheduler pass failed');
          return false;
        })
        .then((full) => {
          this.running = undefined;
          if (this.stopped) {
            return;
          }
          const again = full || this.kicked;
          this.kicked = false;
          this.schedule(again ? 0 : this.options.intervalMs);
        });
    }, delayMs);
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
    const groups = await leaseDueRecipients(pool, {
      limit: this.options.batch,
      leaseMs: this.options.leaseMs,
      maxBytes: MAX_PASS_BYTES,
    });
    if (groups.length === 0) {
      return false;
    }
    const bodies = await loadBodies(pool, [...new Set(groups.map((group) => group.queueId))]);
    const overrides = await primaryHostsByDomain(pool, [
      ...new Set(groups.map((group) => group.domain)),
    ]);
    await Promise.all(
      groups.map((group) =>
        this.publishJob(group, bodies.get(group.queueId), overrides.get(group.domain)),
      ),
    );
    const leased = groups.reduce((sum, group) => sum + group.recipients.length, 0);
    logger.debug({ jobs: groups.length, recipients: leased }, 'scheduler pass');
    return leased >= this.options.batch;
  }

  private async publishJob(group: LeasedGroup, body: Buffer | undefined, primaryHosts?: string[]) {
    const { pool, broker, logger } = this.options;
    const log = logger.child({ queueId: group.queueId, domain: group.domain });
    if (!body) {
      // NOTE: the bytes go only when every recipient is final, so this means a lost body;
      // the recipients wait and are retried rather than being failed by the scheduler.
      log.error('message bytes missing for a leased recipient');
      await releaseLease(pool, group.leaseId, this.options.leaseMs);
      return;
    }
    const job: DeliveryJob = {
      leaseId: group.leaseId,
      leaseUntil: group.leaseUntil.getTime(),
      queueId: group.queueId,
      domain: group.domain,
      sender: group.sender,
      recipients: group.recipients.map((recipient) => ({
        id: recipient.id,
        address: recipient.address,
        ...(recipient.notify
          ? { notify: recipient.notify as DeliveryJob['recipients'][number]['notify'] }
          : {}),
        ...(recipient.orcpt ? { orcpt: recipient.orcpt } : {}),
      })),
      ...(group.ret ? { ret: group.ret } : {}),
      ...(group.envid ? { envid: group.envid } : {}),
      bodyType: group.bodyType === '8BITMIME' ? '8BITMIME' : '7BIT',
      smtpUtf8: group.smtpUtf8,
      primaryHosts: primaryHosts ?? [],
    };
    try {
      await broker.publish(QUEUE.deliveryJobs, encodeFrame(job, body));
    } catch (error) {
      log.warn({ err: error }, 'publishing a delivery job failed, lease handed back');
      await releaseLease(pool, group.leaseId, REPUBLISH_DELAY_MS);
    }
  }
}
