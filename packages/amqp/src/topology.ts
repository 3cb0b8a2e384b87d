import { prefixed, QUEUE } from '@secondary-mx/contracts';
import type { Options } from 'amqplib';

/**
 * Declaration options of each queue; publishers and consumers must declare a queue alike.
 * Jobs and results are durable quorum queues: losing them would strand mail until its lease runs
 * out. RPC request queues are transient because a request outlives its caller's timeout by
 * seconds at most.
 */
export function queueOptions(prefix: string, queue: string): Options.AssertQueue {
  const durable = [QUEUE.deliveryJobs, QUEUE.deliveryResults].map((name) => prefixed(prefix, name));
  if (durable.includes(queue)) {
    return { durable: true, arguments: { 'x-queue-type': 'quorum' } };
  }
  return { durable: false };
}
