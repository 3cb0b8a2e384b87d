/**
 * Removes what a test run declared on the shared RabbitMQ: its durable queues and the control
 * exchange, all named with the run's prefix.
 */

import { EXCHANGE, prefixed, QUEUE } from '@secondary-mx/contracts';
import amqp, { type Channel } from 'amqplib';
import { LOCAL_AMQP_URL } from './environment.ts';

async function withChannel<T>(
  work: (channel: Channel) => Promise<T>,
  url = LOCAL_AMQP_URL,
): Promise<T> {
  const connection = await amqp.connect(url);
  try {
    return await work(await connection.createChannel());
  } finally {
    await connection.close();
  }
}

/** Deletes every queue and exchange of the suite that carries this prefix. */
export function deleteBrokerObjects(prefix: string, url = LOCAL_AMQP_URL): Promise<void> {
  return withChannel(async (channel) => {
    for (const queue of Object.values(QUEUE)) {
      await channel.deleteQueue(prefixed(prefix, queue));
    }
    await channel.deleteExchange(prefixed(prefix, EXCHANGE.control));
  }, url);
}

/** Deletes the named queues. */
export function deleteQueues(queues: string[], url = LOCAL_AMQP_URL): Promise<void> {
  return withChannel(async (channel) => {
    for (const queue of queues) {
      await channel.deleteQueue(queue);
    }
  }, url);
}

/** Empties a queue and returns how many ready messages it held. */
export function purgeQueue(queue: string, url = LOCAL_AMQP_URL): Promise<number> {
  return withChannel(async (channel) => (await channel.purgeQueue(queue)).messageCount, url);
}
