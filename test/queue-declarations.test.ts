/**
 * The queues as RabbitMQ stores them: every queue a service declares survives a broker restart.
 * Redeclaring a queue with other properties fails with 406 PRECONDITION_FAILED, which shows what
 * the broker stored.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Broker } from '@secondary-mx/amqp';
import { prefixed, QUEUE } from '@secondary-mx/contracts';
import { createLogger } from '@secondary-mx/logger';
import {
  deleteBrokerObjects,
  deleteQueues,
  LOCAL_AMQP_URL,
  uniqueName,
} from '@secondary-mx/testkit';
import amqp from 'amqplib';

/** Returns the AMQP reply code of declaring the queue with the options, or 200 on success. */
async function declareCode(queue: string, options: amqp.Options.AssertQueue): Promise<number> {
  const connection = await amqp.connect(LOCAL_AMQP_URL);
  try {
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    try {
      await channel.assertQueue(queue, options);
      await channel.close();
      return 200;
    } catch (error) {
      return (error as { code?: number }).code ?? 0;
    }
  } finally {
    await connection.close().catch(() => undefined);
  }
}

test('request and job queues are durable', async () => {
  const logger = createLogger('queue-declarations-test', 'silent');
  const prefix = `${uniqueName('declare')}.`;
  const broker = new Broker({
    url: LOCAL_AMQP_URL,
    prefix,
    logger,
    connectionName: 'declare-test',
  });
  broker.serve(QUEUE.greylistCheck, async () => Buffer.from('{}'), { prefetch: 1 });
  broker.consume(QUEUE.deliveryJobs, async () => undefined, { prefetch: 1 });
  const names = [prefixed(prefix, QUEUE.greylistCheck), prefixed(prefix, QUEUE.deliveryJobs)];
  try {
    await broker.start();
    const [request, jobs] = names as [string, string];

    assert.equal(await declareCode(request, { durable: false }), 406, 'request queue transient');
    assert.equal(await declareCode(request, { durable: true }), 200);
    assert.equal(await declareCode(jobs, { durable: true }), 406, 'jobs not a quorum queue');
    assert.equal(
      await declareCode(jobs, { durable: true, arguments: { 'x-queue-type': 'quorum' } }),
      200,
    );
  } finally {
    await broker.close();
    await deleteQueues(names);
    await deleteBrokerObjects(prefix);
  }
});
