// Deletes the queues that earlier test runs left on the local RabbitMQ: names made by testkit's
// uniqueName (`label_<base36 time>_<6 hex digits>.queue`) that have no consumer. Reads
// `rabbitmqctl -q list_queues name consumers` output on standard input.
import { readFileSync } from 'node:fs';
import amqp from 'amqplib';

const TEST_QUEUE = /^[\w-]+_[0-9a-z]+_[0-9a-f]{6}\./;
const url = process.env.TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const stale = readFileSync(0, 'utf8')
  .split('\n')
  .map((line) => line.trim().split(/\s+/))
  .filter(([name, consumers]) => name && consumers === '0' && TEST_QUEUE.test(name))
  .map(([name]) => name);

const connection = await amqp.connect(url);
let channel = await connection.createChannel();
let deleted = 0;
for (const name of stale) {
  try {
    await channel.deleteQueue(name);
    deleted += 1;
  } catch {
    channel = await connection.createChannel();
  }
}
await connection.close();
console.log(`deleted ${deleted} of ${stale.length} queues left by earlier test runs`);
