/**
 * Whether ingress can store a message now. While it cannot, RCPT gets 451 4.3.0, so the sender
 * learns it before sending DATA in vain and never gets a 250 for a recipient it cannot keep.
 *
 * The RabbitMQ connection is judged by its state, which changes as soon as the connection drops.
 * queue-store and its PostgreSQL database are judged by the latest request to queue-store that
 * failed or succeeded: spool.store or domains.list. A failure makes the spool unavailable until
 * a later request succeeds. Because RCPT then stops every new message, the caller reloads the
 * approved domains after a failed spool write, and that domains.list request checks queue-store
 * again.
 */
import type { Broker } from '@secondary-mx/amqp';
import type { Logger } from '@secondary-mx/logger';

export class SpoolAvailability {
  private failure: string | undefined;

  constructor(
    private readonly broker: Broker,
    private readonly logger: Logger,
  ) {}

  /** Records a request to queue-store that got its reply. */
  succeeded(): void {
    if (this.failure !== undefined) {
      this.logger.info('queue-store replies again, recipients are accepted');
      this.failure = undefined;
    }
  }

  /** Records a request to queue-store that timed out or that queue-store could not serve. */
  failed(reason: string): void {
    if (this.failure === undefined) {
      this.logger.warn({ reason }, 'queue-store unavailable, recipients are deferred');
    }
    this.failure = reason;
  }

  /** Whether the latest request to queue-store failed, until a later one succeeds. */
  get failing(): boolean {
    return this.failure !== undefined;
  }

  /** Returns why a message cannot be stored now, or undefined when it can. */
  unavailableReason(): string | undefined {
    if (!this.broker.connected) {
      return 'RabbitMQ is not connected';
    }
    return this.failure;
  }
}
