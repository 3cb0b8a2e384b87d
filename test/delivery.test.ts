/**
 * queue-store and delivery workers as separate processes against a fake primary: per-recipient
 * results end in the right states, and two workers drain a backlog with every message
 * delivered exactly once.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { newQueueId } from '@secondary-mx/contracts';
import { createPool, insertMessage, type Pool } from '@secondary-mx/db';
import { createLogger } from '@secondary-mx/logger';
import { type FakePrimary, type Suite, startFakePrimary, startSuite } from '@secondary-mx/testkit';
import pg from 'pg';

let suite: Suite;
let primary: FakePrimary;
let pool: Pool;

async function queueMessage(recipients: string[], subject: string): Promise<string> {
  const queueId = newQueueId();
  await insertMessage(pool, {
    queueId,
    sender: 'alice@sender.example',
    recipients: recipients.map((address) => ({
      envelope: { address },
      domain: address.slice(address.lastIndexOf('@') + 1),
    })),
    body: Buffer.from(`Subject: ${subject}\r\nX-Queue-Id: ${queueId}\r\n\r\nbody\r\n`),
    bodyType: '7BIT',
    smtpUtf8: false,
    clientAddress: '192.0.2.1',
    receivedAt: new Date(),
    expiresAt: new Date(Date.now() + 86_400_000),
  });
  return queueId;
}

async function states(queueId: string): Promise<Record<string, string>> {
  const result = await pool.query<{ address: string; state: string }>(
    'SELECT address, state FROM recipients WHERE message_id = $1',
    [queueId],
  );
  return Object.fromEntries(result.rows.map((row) => [row.address, row.state]));
}

async function until(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${suite.logs()}`);
}

before(async () => {
  primary = await startFakePrimary();
  suite = await startSuite({
    services: ['queue-store', 'delivery-worker', 'delivery-worker'],
    env: {
      DNS_SERVERS: '127.0.0.1:9',
      MX_RETRY_MIN: '1h',
      MX_RETRY_MAX: '2h',
      MX_SCHEDULER_INTERVAL: '200ms',
      MX_SCHEDULER_BATCH: '50',
      MX_DELIVERY_CONCURRENCY: '5',
    },
  });
  pool = createPool(suite.environment.database.url, createLogger('test', 'silent'));
  const admin = new pg.Client({ connectionString: suite.environment.database.url });
  await admin.connect();
  await admin.query(
    `INSERT INTO domains (name, member_number, state, primary_hosts)
     VALUES ('member.example', '1001', 'approved', $1)`,
    [[primary.address]],
  );
  await admin.end();
});

after(async () => {
  await pool?.end();
  await suite?.stop();
  await primary?.stop();
});

test('each recipient ends in the state of its own reply', async () => {
  primary.onRcpt = (address) => {
    if (address.startsWith('busy@')) {
      return { code: 450, message: '4.2.1 Mailbox busy, try later' };
    }
    if (address.startsWith('gone@')) {
      return { code: 550, message: '5.1.1 No such user' };
    }
    return undefined;
  };
  const queueId = await queueMessage(
    ['ok@member.example', 'busy@member.example', 'gone@member.example'],
    'per-recipient',
  );
  await until(
    'all three results',
    async () =>
      Object.values(await states(queueId)).every(
        (state) => state !== 'queued' && state !== 'active',
      ),
    15_000,
  );
  assert.deepEqual(await states(queueId), {
    'ok@member.example': 'delivered',
    'busy@member.example': 'deferred',
    'gone@member.example': 'failed',
  });
  const replies = await pool.query<{ address: string; lastReply: string }>(
    'SELECT address, last_reply AS "lastReply" FROM recipients WHERE message_id = $1 ORDER BY address',
    [queueId],
  );
  const byAddress = Object.fromEntries(replies.rows.map((row) => [row.address, row.lastReply]));
  assert.match(byAddress['busy@member.example'] ?? '', /^450 4\.2\.1 Mailbox busy/);
  assert.match(byAddress['gone@member.example'] ?? '', /^550 5\.1\.1 No such user/);
  const received = primary.messages.filter((message) =>
    message.raw.includes('Subject: per-recipient'),
  );
  assert.equal(received.length, 1);
  assert.deepEqual(received[0]?.rcptTo, ['ok@member.example']);
  primary.onRcpt = () => undefined;
});

test('two workers drain 200 messages, each delivered exactly once', async () => {
  const before = primary.messages.length;
  const queueIds: string[] = [];
  for (let i = 0; i < 200; i++) {
    queueIds.push(await queueMessage([`user${i}@member.example`], `drain ${i}`));
  }
  await primary.waitForMessages(before + 200, 30_000);
  await until(
    'every recipient delivered',
    async () => {
      const result = await pool.query<{ count: number }>(
        `SELECT count(*)::int AS count FROM recipients WHERE message_id = ANY($1) AND state = 'delivered'`,
        [queueIds],
      );
      return result.rows[0]?.count === 200;
    },
    10_000,
  );
  await new Promise((resolve) => setTimeout(resolve, 500));
  const delivered = primary.messages
    .slice(before)
    .map((message) => /X-Queue-Id: (\w+)/.exec(message.raw.toString('latin1'))?.[1]);
  assert.equal(delivered.length, 200, 'no duplicates arrived');
  assert.deepEqual(new Set(delivered), new Set(queueIds));
  const pids = new Set(
    suite.processes
      .filter((child) => child.name === 'delivery-worker')
      .filter((child) => /"status":"delivered"/.test(child.output.join('')))
      .map((child) => child.child.pid),
  );
  assert.equal(pids.size, 2, 'both workers delivered part of the backlog');
});

test('recipient deferred by 421 is retried after a success', async () => {
  const shutdownPrimary = await startFakePrimary();
  const admin = new pg.Client({ connectionString: suite.environment.database.url });
  await admin.connect();
  await admin.query(
    `INSERT INTO domains (name, member_number, state, primary_hosts)
     VALUES ('shutdown.example', '1002', 'approved', $1)`,
    [[shutdownPrimary.address]],
  );
  await admin.end();
  try {
    let shuttingDown = true;
    shutdownPrimary.onRcpt = () =>
      shuttingDown ? { code: 421, message: '4.3.2 shutting down' } : undefined;
    const first = await queueMessage(['early@shutdown.example'], 'before shutdown');
    await until(
      'the 421 deferral',
      async () => (await states(first))['early@shutdown.example'] === 'deferred',
      15_000,
    );
    const attempts = await pool.query<{ reply: string }>(
      `SELECT a.reply FROM delivery_attempts a JOIN recipients r ON r.id = a.recipient_id
       WHERE r.message_id = $1`,
      [first],
    );
    assert.match(attempts.rows[0]?.reply ?? '', /^421 4\.3\.2 shutting down/);

    // MX_RETRY_MIN is 1h, so only the success below can bring the first recipient out early.
    shuttingDown = false;
    const second = await queueMessage(['late@shutdown.example'], 'after shutdown');
    await until(
      'both recipients delivered',
      async () =>
        (await states(first))['early@shutdown.example'] === 'delivered' &&
        (await states(second))['late@shutdown.example'] === 'delivered',
      15_000,
    );
    const subjects = shutdownPrimary.messages.map(
      (message) => /Subject: ([^\r\n]*)/.exec(message.raw.toString('latin1'))?.[1],
    );
    assert.deepEqual(subjects.sort(), ['after shutdown', 'before shutdown']);
  } finally {
    await shutdownPrimary.stop();
  }
});
