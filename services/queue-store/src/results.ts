/**
 * Consumes delivery.results and records each recipient's outcome. The result message is
 * acknowledged only after the transaction committed; a failure requeues it.
 */
import type { ConsumeMessage } from '@secondary-mx/amqp';
import { DeliveryResultSchema } from '@secondary-mx/contracts';
import { type Backoff, type Pool, recordDeliveryResult } from '@secondary-mx/db';
import type { Logger } from '@secondary-mx/logger';

export interface ResultsOptions {
  pool: Pool;
  logger: Logger;
  backoff: Backoff;
}

export function createResultsHandler(options: ResultsOptions) {
  const { pool, logger, backoff } = options;
  return async (message: ConsumeMessage): Promise<void> => {
    let json: unknown;
    try {
      json = JSON.parse(message.content.toString('utf8'));
    } catch (error) {
      logger.error({ err: error }, 'delivery result is not JSON, dropped');
      return;
    }
    const parsed = DeliveryResultSchema.safeParse(json);
    if (!parsed.success) {
      logger.error({ issues: parsed.error.issues }, 'delivery result is invalid, dropped');
      return;
    }
    const result = parsed.data;
    const recorded = await recordDeliveryResult(pool, result, backoff);
    const log = logger.child({ queueId: result.queueId, domain: result.domain });
    const changed = new Set(recorded.map((row) => row.recipientId));
    for (const outcome of result.outcomes) {
      if (!changed.has(outcome.recipientId)) {
        log.warn(
          { recipientId: outcome.recipientId, status: outcome.status },
          'stale delivery result ignored: the lease was taken back',
        );
      }
    }
  };
}
