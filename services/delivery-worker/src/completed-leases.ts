/**
 * Results of the leases this worker has delivered, kept until each lease runs out. When RabbitMQ
 * hands a job over again because its acknowledgement was lost (a broken connection, a failed
 * publish), the worker publishes the stored result again instead of sending the mail twice.
 */
import type { DeliveryResult } from '@secondary-mx/contracts';

interface CompletedLease {
  leaseUntil: number;
  result: DeliveryResult;
}

/** Bounds memory if leases are long and jobs many; the oldest entries go first. */
const MAX_ENTRIES = 100_000;

export class CompletedLeases {
  private readonly leases = new Map<string, CompletedLease>();

  remember(leaseId: string, leaseUntil: number, result: DeliveryResult): void {
    this.leases.set(leaseId, { leaseUntil, result });
    while (this.leases.size > MAX_ENTRIES) {
      const oldest = this.leases.keys().next().value as string;
      this.leases.delete(oldest);
    }
  }

  /** Returns the result of a lease this worker already delivered, while the lease is valid. */
  find(leaseId: string, now = Date.now()): DeliveryResult | undefined {
    this.prune(now);
    const lease = this.leases.get(leaseId);
    return lease && lease.leaseUntil > now ? lease.result : undefined;
  }

  /**
   * Drops expired leases from the oldest on. Leases arrive in about the order they expire,
   * because queue-store grants them all for the same MX_LEASE_TIME, so the scan stops at the
   * first valid one. A lease that expires earlier than one before it is dropped a little late.
   */
  private prune(now: number): void {
    for (const [leaseId, lease] of this.leases) {
      if (lease.leaseUntil > now) {
        return;
      }
      this.leases.delete(leaseId);
    }
  }
}
