import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { newQueueId } from '@secondary-mx/contracts';
import { createPool, ensureDatabase, migrate, type NewMessage, type Pool } from '@secondary-mx/db';
import { createLogger } from '@secondary-mx/logger';
import { testDatabase } from '@secondary-mx/testkit';
import { DeadlinePassedError, SpoolWriter } from '../src/spool-writer.ts';

const logger = createLogger('test', 'silent');
const database = testDatabase('spool_writer');
let pool: Pool;

function message(recipientDomain: string | null = 'member.example'): NewMessage {
  return {
    queueId: newQueueId(),
    sender: 'alice@sender.example',
    recipients: [
      {
        envelope: { address: `bob@${recipientDomain}` },
        domain: recipientDomain as string,
      },
    ],
    body: Buffer.from(`Subject: x\r\n\r\n${'\u00e9'.repeat(10)}\r\n`),
    bodyType: '8BITMIME',
    smtpUtf8: false,
    clientAddress: '192.0.2.1',
    receivedAt: new Date(),
    expiresAt: new Date(Date.now() + 86_400_000),
  };
}

function inOneMinute(): number {
  return Date.now() + 60_000;
}

async function storedCount(): Promise<number> {
  const result = await pool.query<{ count: number }>('SELECT count(*)::int AS count FROM messages');
  return result.rows[0]?.count ?? 0;
}

before(async () => {
  await ensureDatabase(database.url, logger);
  await migrate(database.url, logger);
  pool = createPool(database.url, logger);
});

after(async () => {
  await pool.end();
  await database.drop();
});

test('concurrent writes are all stored byte for byte', async () => {
  const writer = new SpoolWriter(pool);
  const messages = Array.from({ length: 150 }, () => message());
  const results = await Promise.all(messages.map((item) => writer.write(item, inOneMinute())));
  assert.deepEqual(
    results,
    messages.map(() => true),
  );
  const rows = await pool.query<{ id: string; body: Buffer; size: number }>(
    'SELECT id, body, size FROM messages WHERE id = ANY($1)',
    [messages.map((item) => item.queueId)],
  );
  assert.equal(rows.rows.length, 150);
  for (const row of rows.rows) {
    const original = messages.find((item) => item.queueId === row.id);
    assert.deepEqual(row.body, original?.body);
    assert.equal(row.size, original?.body.length);
  }
  const recipients = await pool.query<{ count: number }>(
    'SELECT count(*)::int AS count FROM recipients WHERE message_id = ANY($1)',
    [messages.map((item) => item.queueId)],
  );
  assert.equal(recipients.rows[0]?.count, 150);
});

test('repeated queue id resolves false', async () => {
  const writer = new SpoolWriter(pool);
  const item = message();
  const [first, second] = await Promise.all([
    writer.write(item, inOneMinute()),
    writer.write(item, inOneMinute()),
  ]);
  assert.equal(first, true);
  assert.equal(second, false);
  assert.equal(await writer.write(item, inOneMinute()), false);
});

test('one invalid message fails alone', async () => {
  const writer = new SpoolWriter(pool);
  const before = await storedCount();
  const good = Array.from({ length: 5 }, () => message());
  const bad = message(null);
  const outcomes = await Promise.allSettled([
    writer.write(good[0] as NewMessage, inOneMinute()),
    ...[...good.slice(1), bad].map((item) => writer.write(item, inOneMinute())),
  ]);
  const rejected = outcomes.filter((outcome) => outcome.status === 'rejected');
  assert.equal(rejected.length, 1);
  assert.equal(outcomes.at(-1)?.status, 'rejected');
  assert.equal((await storedCount()) - before, 5);
});

test('write slower than its deadline is rolled back', async () => {
  const writer = new SpoolWriter(pool);
  const item = message();
  const locker = await pool.connect();
  try {
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE messages IN ACCESS EXCLUSIVE MODE');
    const rejected = assert.rejects(writer.write(item, Date.now() + 1500), DeadlinePassedError);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await locker.query('COMMIT');
    await rejected;
  } finally {
    locker.release();
  }
  const stored = await pool.query('SELECT 1 FROM messages WHERE id = $1', [item.queueId]);
  assert.equal(stored.rowCount, 0);
});

test('write past its deadline is rejected at once', async () => {
  const writer = new SpoolWriter(pool);
  const item = message();
  await assert.rejects(writer.write(item, Date.now() + 500), DeadlinePassedError);
  const stored = await pool.query('SELECT 1 FROM messages WHERE id = $1', [item.queueId]);
  assert.equal(stored.rowCount, 0);
});
