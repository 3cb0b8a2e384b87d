/**
 * Backoff of a periodic pass over the spool that fails, as every pass does while PostgreSQL is
 * unreachable. The wait doubles from RETRY_MIN_MS to RETRY_MAX_MS, the bounds of the RabbitMQ
 * reconnection, so an outage costs one log line per attempt instead of several per second.
 */
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 15_000;

export interface PassRetry {
  /** Failed passes in a row, this one included. */
  attempt: number;
  /** Wait before the next pass, in milliseconds. */
  retryInMs: number;
}

export class PassBackoff {
  private failures = 0;

  /** @param intervalMs the usual time between passes, which a retry never undercuts */
  constructor(private readonly intervalMs: number) {}

  /** Records a failed pass and returns when to try the next one. */
  failed(): PassRetry {
    this.failures += 1;
    const doubled = RETRY_MIN_MS * 2 ** Math.min(this.failures - 1, 10);
    return {
      attempt: this.failures,
      retryInMs: Math.max(this.intervalMs, Math.min(RETRY_MAX_MS, doubled)),
    };
  }

  /** Records a pass that succeeded and returns how many had failed in a row before it. */
  succeeded(): number {
    const failures = this.failures;
    this.failures = 0;
    return failures;
  }
}
