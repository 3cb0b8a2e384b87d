/**
 * A consumer whose handler keeps failing on the local RabbitMQ, as the results consumer of
 * queue-store does while PostgreSQL is down. Every message is requeued and delivered again about
 * once a second, but the failures are logged at most once per interval and queue.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Broker } from '@secondary-mx/amqp';
import { createLogger } from '@secondary-mx/logger';
import {
  deleteBrokerObjects,
  deleteQueues,
  LOCAL_AMQP_URL,
  uniqueName,
} from '@secondary-mx/testkit';

const MESSAGES = 5;
/** Long enough for every message to be delivered three or four times. */
const FAILING_MS = 3500;

test('failing handler requeues, logs once', async () => {
  const logger = createLogger('broker-test', 'silent');
  const errorLines: { fields: Record<string, unknown>; message: string }[] = [];
  logger.error = ((fields: Record<string, unknown>, message: string) => {
    errorLines.push({ fields, message });
  }) as typeof logger.error;
  const prefix = `${uniqueName('broker')}.`;
  const broker = new Broker({
    url: LOCAL_AMQP_URL,
    prefix,
    logger,
    connectionName: 'broker-handler-failures-test',
  });
  let calls = 0;
  broker.consume(
    'work',
    async () => {
      calls += 1;
      throw new Error('database down');
    },
    { prefetch: MESSAGES },
  );
  try {
    await broker.start();
    for (let index = 0; index < MESSAGES; index++) {
      await broker.publish('work', Buffer.from(String(index)));
    }
    await new Promise((resolve) => setTimeout(resolve, FAILING_MS));

    assert.ok(calls >= 2 * MESSAGES, `the handler ran ${calls} times`);
    const failures = errorLines.filter((line) => line.message.startsWith('message handler failed'));
    assert.equal(failures.length, 1, `${failures.length} lines for ${calls} failures`);
    assert.equal(failures[0]?.fields.queue, `${prefix}work`);
    assert.equal(failures[0]?.fields.suppressed, 0);
  } finally {
    await broker.close();
    await deleteQueues([`${prefix}work`]);
    // The control exchange, which every broker connection declares.
    await deleteBrokerObjects(prefix);
  }
});
