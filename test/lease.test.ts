/**
 * A delivery job against a slow primary stops before its lease runs short and hands the rest of
 * its messages back, so no message is cut after the primary accepted it and sent again under
 * the next lease.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { newQueueId } from '@secondary-mx/contracts';
import { createPool, insertMessage, type Pool } from '@secondary-mx/db';
import { createLogger } from '@secondary-mx/logger';
import { type FakePrimary, type Suite, startFakePrimary, startSuite } from '@secondary-mx/testkit';
import pg from 'pg';

/** How long the primary waits before its reply to the final dot. */
const PRIMARY_DELAY_MS = 300;
const MESSAGES = 40;

let suite: Suite;
let primary: FakePrimary;
let pool: Pool;

async function queueMessage(index: number): Promise<string> {
  const queueId = newQueueId();
  await insertMessage(pool, {
    queueId,
    sender: 'alice@sender.example',
    recipients: [{ envelope: { address: `user${index}@slow.example` }, domain: 'slow.example' }],
    body: Buffer.from(`Subject: slow ${index}\r\nX-Queue-Id: ${queueId}\r\n\r\nbody\r\n`),
    bodyType: '7BIT',
    smtpUtf8: false,
    clientAddress: '192.0.2.1',
    receivedAt: new Date(),
    expiresAt: new Date(Date.now() + 86_400_000),
  });
  return queueId;
}

async function deliveredCount(queueIds: string[]): Promise<number> {
  const result = await pool.query<{ count: number }>(
    `SELECT count(*)::int AS count FROM recipients
     WHERE message_id = ANY($1) AND state = 'delivered'`,
    [queueIds],
  );
  return result.rows[0]?.count ?? 0;
}

before(async () => {
  primary = await startFakePrimary();
  primary.onData = () =>
    new Promise((resolve) => setTimeout(() => resolve(undefined), PRIMARY_DELAY_MS));
  suite = await startSuite({
    services: ['queue-store', 'delivery-worker', 'delivery-worker'],
    env: {
      DNS_SERVERS: '127.0.0.1:9',
      // 20 messages of 300 ms need 6 s, twice the lease: each job must stop early.
      MX_LEASE_TIME: '3s',
      MX_DELIVERY_TIMEOUT: '2s',
      MX_MESSAGES_PER_CONNECTION: '20',
      MX_RETRY_MIN: '1s',
      MX_RETRY_MAX: '2s',
      MX_SCHEDULER_INTERVAL: '200ms',
    },
  });
  pool = createPool(suite.environment.database.url, createLogger('test', 'silent'));
  const admin = new pg.Client({ connectionString: suite.environment.database.url });
  await admin.connect();
  await admin.query(
    `INSERT INTO domains (name, member_number, state, primary_hosts)
     VALUES ('slow.example', '1001', 'approved', $1)`,
    [[primary.address]],
  );
  await admin.end();
});

after(async () => {
  await pool?.end();
  await suite?.stop();
  await primary?.stop();
});

test('slow primary gets each message once', async () => {
  const queueIds: string[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    queueIds.push(await queueMessage(i));
  }

  const deadline = Date.now() + 90_000;
  while ((await deliveredCount(queueIds)) < MESSAGES) {
    assert.ok(Date.now() < deadline, `not all delivered within 90 s\n${suite.logs()}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  // A message sent twice would arrive after its first delivery was recorded.
  await new Promise((resolve) => setTimeout(resolve, 2 * PRIMARY_DELAY_MS));

  const received = primary.messages.map(
    (message) => /X-Queue-Id: (\w+)/.exec(message.raw.toString('latin1'))?.[1],
  );
  const counts = new Map<string, number>();
  for (const queueId of received) {
    counts.set(queueId ?? 'none', (counts.get(queueId ?? 'none') ?? 0) + 1);
  }
  const repeated = [...counts].filter(([, count]) => count > 1);
  assert.deepEqual(repeated, [], 'no message arrived twice');
  assert.equal(received.length, MESSAGES);
  assert.deepEqual(new Set(received), new Set(queueIds));
  assert.match(suite.logs(), /"failureKind":"notAttempted"/, 'some jobs handed messages back');
});
