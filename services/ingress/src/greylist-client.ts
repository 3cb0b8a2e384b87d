import type { Broker } from '@secondary-mx/amqp';
import {
  type GreylistCheckReply,
  GreylistCheckReplySchema,
  type GreylistCheckRequest,
  QUEUE,
} from '@secondary-mx/contracts';

export type GreylistVerdict = GreylistCheckReply | { action: 'unavailable'; error: Error };

/**
 * Asks the greylist service for a verdict on one recipient. Returns `unavailable` when no
 * verdict came in time; the caller decides whether that lets mail through.
 */
export async function checkGreylist(
  broker: Broker,
  request: GreylistCheckRequest,
  timeoutMs: number,
): Promise<GreylistVerdict> {
  try {
    const content = await broker.call(
      QUEUE.greylistCheck,
      Buffer.from(JSON.stringify(request)),
      timeoutMs,
    );
    return GreylistCheckReplySchema.parse(JSON.parse(content.toString('utf8')));
  } catch (error) {
    return { action: 'unavailable', error: error as Error };
  }
}
