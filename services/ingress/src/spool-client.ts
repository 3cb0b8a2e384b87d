import type { Broker } from '@secondary-mx/amqp';
import {
  encodeFrame,
  QUEUE,
  type SpoolStoreReply,
  SpoolStoreReplySchema,
  type SpoolStoreRequest,
} from '@secondary-mx/contracts';

/**
 * Hands a message to queue-store and waits for the commit. Resolves with queue-store's reply;
 * rejects when none came in time or RabbitMQ is unavailable. Either way the caller may only
 * answer 250 on `{ ok: true }`.
 */
export async function storeMessage(
  broker: Broker,
  request: Omit<SpoolStoreRequest, 'deadline'>,
  message: Buffer,
  timeoutMs: number,
): Promise<SpoolStoreReply> {
  const header: SpoolStoreRequest = { ...request, deadline: Date.now() + timeoutMs };
  const content = await broker.call(QUEUE.spoolStore, encodeFrame(header, message), timeoutMs);
  return SpoolStoreReplySchema.parse(JSON.parse(content.toString('utf8')));
}
