import { prefixed, QUEUE } from '@secondary-mx/contracts';
import type { Options } from 'amqplib';

/**
 * Declaration options of each queue; publishers and consumers must declare a queue alike.
 * Jobs and results are durable quorum queues: losing them would strand mail until its lease runs
 * out. RPC request queues are durable classic queues that carry transient messages, because a
 * request outlives its caller's timeout by seconds at most. They are declared durable all the
 * same, since RabbitMQ deprecates transient queues that are not exclusive
 * (`transient_nonexcl_queues`) and a request queue is shared by every replica.
 */
export function queueOptions(prefix: string, queue: string): Options.AssertQueue {
  const durable = [QUEUE.deliveryJobs, QUEUE.deliveryResults].map((name) => prefixed(prefix, name));
  if (durable.includes(queue)) {
    return { durable: true, arguments: { 'x-queue-type': 'quorum' } };
  }
  return { durable: true };
}
