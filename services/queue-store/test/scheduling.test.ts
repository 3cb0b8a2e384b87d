import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { newQueueId } from '@secondary-mx/contracts';
import {
  createPool,
  ensureDatabase,
  insertMessage,
  leaseDueRecipients,
  migrate,
  type Pool,
  reclaimExpiredLeases,
  recordDeliveryResult,
} from '@secondary-mx/db';
import { createLogger } from '@secondary-mx/logger';
import { testDatabase } from '@secondary-mx/testkit';

const logger = createLogger('test', 'silent');
const database = testDatabase('scheduling');
const backoff = { minMs: 60_000, maxMs: 3_600_000 };
let pool: Pool;
let otherPool: Pool;

async function storeMessage(recipients: string[], body = 'Subject: x\r\n\r\nbody\r\n') {
  const queueId = newQueueId();
  await insertMessage(pool, {
    queueId,
    sender: 'alice@sender.example',
    recipients: recipients.map((address) => ({
      envelope: { address },
      domain: address.slice(address.lastIndexOf('@') + 1),
    })),
    body: Buffer.from(body),
    bodyType: '7BIT',
    smtpUtf8: false,
    clientAddress: '192.0.2.1',
    receivedAt: new Date(),
    expiresAt: new Date(Date.now() + 86_400_000),
  });
  return queueId;
}

async function recipientRows(queueId: string) {
  const result = await pool.query<{
    id: string;
    address: string;
    state: string;
    attempts: number;
    delaySeconds: number;
  }>(
    `SELECT id::text, address, state, attempts,
            extract(epoch FROM next_attempt_at - now())::float8 AS "delaySeconds"
     FROM recipients WHERE message_id = $1 ORDER BY id`,
    [queueId],
  );
  return result.rows;
}

before(async () => {
  await ensureDatabase(database.url, logger);
  await migrate(database.url, logger);
  pool = createPool(database.url, logger);
  otherPool = createPool(database.url, logger);
});

beforeEach(async () => {
  await pool.query('TRUNCATE messages CASCADE');
});

after(async () => {
  await pool.end();
  await otherPool.end();
  await database.drop();
});

test('recipients are leased in groups of message and domain', async () => {
  const queueId = await storeMessage(['a@one.example', 'b@one.example', 'c@two.example']);
  const groups = await leaseDueRecipients(pool, { limit: 100, leaseMs: 60_000, maxBytes: 1e9 });
  assert.equal(groups.length, 2);
  const one = groups.find((group) => group.domain === 'one.example');
  const two = groups.find((group) => group.domain === 'two.example');
  assert.deepEqual(
    one?.recipients.map((recipient) => recipient.address),
    ['a@one.example', 'b@one.example'],
  );
  assert.deepEqual(
    two?.recipients.map((recipient) => recipient.address),
    ['c@two.example'],
  );
  assert.notEqual(one?.leaseId, two?.leaseId);
  const rows = await recipientRows(queueId);
  assert.ok(rows.every((row) => row.state === 'active'));
  const again = await leaseDueRecipients(pool, { limit: 100, leaseMs: 60_000, maxBytes: 1e9 });
  assert.equal(again.length, 0, 'an active recipient is not leased twice');
});

test('concurrent schedulers never lease one recipient twice', async () => {
  for (let i = 0; i < 100; i++) {
    await storeMessage([`user${i}@one.example`, `user${i}@two.example`]);
  }
  const leased: string[] = [];
  const lease = async (from: Pool) => {
    for (;;) {
      const groups = await leaseDueRecipients(from, { limit: 7, leaseMs: 60_000, maxBytes: 1e9 });
      if (groups.length === 0) {
        return;
      }
      for (const group of groups) {
        leased.push(...group.recipients.map((recipient) => recipient.id));
      }
    }
  };
  await Promise.all([lease(pool), lease(otherPool), lease(pool), lease(otherPool)]);
  assert.equal(leased.length, 200);
  assert.equal(new Set(leased).size, 200);
});

test('expired lease puts the recipient back', async () => {
  const queueId = await storeMessage(['a@one.example']);
  const [group] = await leaseDueRecipients(pool, { limit: 10, leaseMs: 50, maxBytes: 1e9 });
  assert.ok(group);
  assert.equal(await reclaimExpiredLeases(pool), 0, 'a running lease stays');
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(await reclaimExpiredLeases(pool), 1);
  const [row] = await recipientRows(queueId);
  assert.equal(row?.state, 'deferred');
  const [again] = await leaseDueRecipients(pool, { limit: 10, leaseMs: 60_000, maxBytes: 1e9 });
  assert.equal(again?.recipients[0]?.address, 'a@one.example');
  assert.notEqual(again?.leaseId, group.leaseId);
});

test('temporary failures back off exponentially up to the maximum', async () => {
  const queueId = await storeMessage(['a@one.example']);
  const expected = [60, 120, 240, 480, 960, 1920, 3600, 3600];
  for (const delay of expected) {
    await pool.query('UPDATE recipients SET next_attempt_at = now() WHERE message_id = $1', [
      queueId,
    ]);
    const [group] = await leaseDueRecipients(pool, { limit: 10, leaseMs: 60_000, maxBytes: 1e9 });
    assert.ok(group);
    await recordDeliveryResult(
      pool,
      {
        leaseId: group.leaseId,
        queueId,
        domain: group.domain,
        attemptedAt: Date.now(),
        outcomes: [
          {
            recipientId: group.recipients[0]?.id as string,
            status: 'deferred',
            reply: '451 4.3.0 busy',
          },
        ],
      },
      backoff,
    );
    const [row] = await recipientRows(queueId);
    assert.equal(row?.state, 'deferred');
    assert.ok(
      (row?.delaySeconds ?? 0) >= delay * 0.89 && (row?.delaySeconds ?? 0) <= delay * 1.11,
      `delay ${row?.delaySeconds}s, expected about ${delay}s`,
    );
  }
});

test('per-recipient outcomes are recorded and the body goes once all are final', async () => {
  const queueId = await storeMessage(['a@one.example', 'b@one.example', 'c@one.example']);
  const [group] = await leaseDueRecipients(pool, { limit: 10, leaseMs: 60_000, maxBytes: 1e9 });
  assert.ok(group);
  const [a, b, c] = group.recipients.map((recipient) => recipient.id) as [string, string, string];
  const result = (
    outcomes: Parameters<typeof recordDeliveryResult>[1]['outcomes'],
    leaseId: string,
  ) =>
    recordDeliveryResult(
      pool,
      { leaseId, queueId, domain: 'one.example', attemptedAt: Date.now(), outcomes },
      backoff,
    );
  await result(
    [
      { recipientId: a, status: 'delivered', reply: '250 2.0.0 ok' },
      { recipientId: b, status: 'deferred', reply: '450 4.2.1 try later' },
      { recipientId: c, status: 'failed', reply: '550 5.1.1 no such user' },
    ],
    group.leaseId,
  );
  const rows = await recipientRows(queueId);
  assert.deepEqual(
    rows.map((row) => row.state),
    ['delivered', 'deferred', 'failed'],
  );
  const attempts = await pool.query('SELECT count(*)::int AS count FROM delivery_attempts');
  assert.equal(attempts.rows[0].count, 3);
  const withBody = await pool.query('SELECT body IS NOT NULL AS has FROM messages WHERE id = $1', [
    queueId,
  ]);
  assert.equal(withBody.rows[0].has, true, 'the body stays while a recipient waits');

  await pool.query('UPDATE recipients SET next_attempt_at = now() WHERE id = $1', [b]);
  const [retry] = await leaseDueRecipients(pool, { limit: 10, leaseMs: 60_000, maxBytes: 1e9 });
  assert.ok(retry);
  await result([{ recipientId: b, status: 'delivered', reply: '250 2.0.0 ok' }], retry.leaseId);
  const done = await pool.query(
    'SELECT body IS NULL AS gone, completed_at IS NOT NULL AS completed FROM messages',
  );
  assert.equal(done.rows[0].gone, true);
  assert.equal(done.rows[0].completed, true);
});

test('stale result cannot undo a newer lease, but a delivery always counts', async () => {
  const queueId = await storeMessage(['a@one.example']);
  const [first] = await leaseDueRecipients(pool, { limit: 10, leaseMs: 1, maxBytes: 1e9 });
  assert.ok(first);
  await new Promise((resolve) => setTimeout(resolve, 20));
  await reclaimExpiredLeases(pool);
  const [second] = await leaseDueRecipients(pool, { limit: 10, leaseMs: 60_000, maxBytes: 1e9 });
  assert.ok(second);
  const id = first.recipients[0]?.id as string;
  const stale = await recordDeliveryResult(
    pool,
    {
      leaseId: first.leaseId,
      queueId,
      domain: 'one.example',
      attemptedAt: Date.now(),
      outcomes: [{ recipientId: id, status: 'failed', reply: '550 5.1.1 gone' }],
    },
    backoff,
  );
  assert.equal(stale.length, 0);
  assert.equal((await recipientRows(queueId))[0]?.state, 'active');
  const delivered = await recordDeliveryResult(
    pool,
    {
      leaseId: first.leaseId,
      queueId,
      domain: 'one.example',
      attemptedAt: Date.now(),
      outcomes: [{ recipientId: id, status: 'delivered', reply: '250 ok' }],
    },
    backoff,
  );
  assert.equal(delivered.length, 1);
  assert.equal((await recipientRows(queueId))[0]?.state, 'delivered');
});

test('storing one queue id twice keeps one copy', async () => {
  const queueId = newQueueId();
  const message = {
    queueId,
    sender: '',
    recipients: [{ envelope: { address: 'a@one.example' }, domain: 'one.example' }],
    body: Buffer.from('x'),
    bodyType: '7BIT',
    smtpUtf8: false,
    clientAddress: '192.0.2.1',
    receivedAt: new Date(),
    expiresAt: new Date(Date.now() + 1000),
  };
  assert.equal(await insertMessage(pool, message), true);
  assert.equal(await insertMessage(pool, message), false);
  assert.equal((await recipientRows(queueId)).length, 1);
});
