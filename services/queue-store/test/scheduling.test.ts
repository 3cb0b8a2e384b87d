import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import type { DeliveryResult, RecipientOutcome } from '@secondary-mx/contracts';
import { newQueueId } from '@secondary-mx/contracts';
import {
  applyDeliveryOutcomes,
  completeFinalMessages,
  createPool,
  ensureDatabase,
  insertMessage,
  type LeasedJob,
  type LeaseOptions,
  leaseDueJobs,
  markReachable,
  markUnreachable,
  migrate,
  type Pool,
  reclaimExpiredLeases,
  withTransaction,
} from '@secondary-mx/db';
import { createLogger } from '@secondary-mx/logger';
import { testDatabase } from '@secondary-mx/testkit';
import { createResultsHandler } from '../src/results.ts';

const logger = createLogger('test', 'silent');
const database = testDatabase('scheduling');
const backoff = { minMs: 60_000, maxMs: 3_600_000 };
let pool: Pool;
let otherPool: Pool;

const LEASE: LeaseOptions = {
  limit: 100,
  leaseMs: 60_000,
  maxBytes: 1e9,
  messagesPerJob: 1,
  jobsPerDomain: 1000,
};

/** Leases like the scheduler, one message per job unless the options set another limit. */
async function lease(options: Partial<LeaseOptions> = {}, from = pool): Promise<LeasedJob[]> {
  return leaseDueJobs(from, { ...LEASE, ...options });
}

/** Records a result the way queue-store does, in one transaction. */
async function record(result: Omit<DeliveryResult, 'kind' | 'attemptedAt'>) {
  return withTransaction(pool, async (client) => {
    const changed = await applyDeliveryOutcomes(
      client,
      { kind: 'delivery', attemptedAt: Date.now(), ...result },
      backoff,
    );
    await completeFinalMessages(client, [
      ...new Set(result.outcomes.map((outcome) => outcome.queueId)),
    ]);
    return changed;
  });
}

function recipientsOf(job: LeasedJob | undefined) {
  return job?.messages.flatMap((message) => message.recipients) ?? [];
}

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
  await pool.query('TRUNCATE destination_probes');
});

after(async () => {
  await pool.end();
  await otherPool.end();
  await database.drop();
});

test('recipients are leased in groups of message and domain', async () => {
  const queueId = await storeMessage(['a@one.example', 'b@one.example', 'c@two.example']);
  const jobs = await lease();
  assert.equal(jobs.length, 2);
  const one = jobs.find((job) => job.domain === 'one.example');
  const two = jobs.find((job) => job.domain === 'two.example');
  assert.deepEqual(
    recipientsOf(one).map((recipient) => recipient.address),
    ['a@one.example', 'b@one.example'],
  );
  assert.deepEqual(
    recipientsOf(two).map((recipient) => recipient.address),
    ['c@two.example'],
  );
  assert.notEqual(one?.leaseId, two?.leaseId);
  const rows = await recipientRows(queueId);
  assert.ok(rows.every((row) => row.state === 'active'));
  assert.equal((await lease()).length, 0, 'an active recipient is not leased twice');
});

test('messages of one domain share a job up to the per-job limit, in arrival order', async () => {
  const queueIds: string[] = [];
  for (let i = 0; i < 7; i++) {
    queueIds.push(await storeMessage([`user${i}@one.example`]));
  }
  const jobs = await lease({ messagesPerJob: 3 });
  assert.deepEqual(
    jobs.map((job) => job.messages.length),
    [3, 3, 1],
  );
  assert.deepEqual(
    jobs.flatMap((job) => job.messages.map((message) => message.queueId)),
    queueIds,
  );
});

test('jobs in flight per domain never exceed the limit', async () => {
  for (let i = 0; i < 20; i++) {
    await storeMessage([`user${i}@one.example`]);
    await storeMessage([`user${i}@two.example`]);
  }
  const first = await lease({ messagesPerJob: 2, jobsPerDomain: 3 });
  const perDomain = (jobs: LeasedJob[], domain: string) =>
    jobs.filter((job) => job.domain === domain).length;
  assert.equal(perDomain(first, 'one.example'), 3);
  assert.equal(perDomain(first, 'two.example'), 3);
  assert.equal((await lease({ messagesPerJob: 2, jobsPerDomain: 3 })).length, 0, 'no slot is free');
  const done = first.find((job) => job.domain === 'one.example') as LeasedJob;
  await record({
    leaseId: done.leaseId,
    domain: 'one.example',
    outcomes: done.messages.flatMap((message) =>
      message.recipients.map((recipient) => ({
        recipientId: recipient.id,
        queueId: message.queueId,
        status: 'delivered' as const,
        reply: '250 ok',
      })),
    ),
  });
  const next = await lease({ messagesPerJob: 2, jobsPerDomain: 3 });
  assert.equal(next.length, 1, 'one freed slot gives one job');
  assert.equal(next[0]?.domain, 'one.example');
});

test('concurrent schedulers never lease one recipient twice', async () => {
  for (let i = 0; i < 100; i++) {
    await storeMessage([`user${i}@one.example`, `user${i}@two.example`]);
  }
  const leased: string[] = [];
  const drain = async (from: Pool) => {
    for (;;) {
      const jobs = await lease({ limit: 7 }, from);
      if (jobs.length === 0) {
        return;
      }
      for (const job of jobs) {
        leased.push(...recipientsOf(job).map((recipient) => recipient.id));
      }
    }
  };
  await Promise.all([drain(pool), drain(otherPool), drain(pool), drain(otherPool)]);
  assert.equal(leased.length, 200);
  assert.equal(new Set(leased).size, 200);
});

test('expired lease puts the recipient back', async () => {
  const queueId = await storeMessage(['a@one.example']);
  const [job] = await lease({ leaseMs: 50 });
  assert.ok(job);
  assert.equal(await reclaimExpiredLeases(pool), 0, 'a running lease stays');
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(await reclaimExpiredLeases(pool), 1);
  const [row] = await recipientRows(queueId);
  assert.equal(row?.state, 'deferred');
  const [again] = await lease();
  assert.equal(recipientsOf(again)[0]?.address, 'a@one.example');
  assert.notEqual(again?.leaseId, job.leaseId);
});

test('temporary failures back off exponentially up to the maximum', async () => {
  const queueId = await storeMessage(['a@one.example']);
  const expected = [60, 120, 240, 480, 960, 1920, 3600, 3600];
  for (const delay of expected) {
    await pool.query('UPDATE recipients SET next_attempt_at = now() WHERE message_id = $1', [
      queueId,
    ]);
    const [job] = await lease();
    assert.ok(job);
    await record({
      leaseId: job.leaseId,
      domain: job.domain,
      outcomes: [
        {
          recipientId: recipientsOf(job)[0]?.id as string,
          queueId,
          status: 'deferred',
          reply: '451 4.3.0 busy',
          failureKind: 'reply',
        },
      ],
    });
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
  const [job] = await lease();
  assert.ok(job);
  const [a, b, c] = recipientsOf(job).map((recipient) => recipient.id) as [string, string, string];
  await record({
    leaseId: job.leaseId,
    domain: 'one.example',
    outcomes: [
      { recipientId: a, queueId, status: 'delivered', reply: '250 2.0.0 ok' },
      {
        recipientId: b,
        queueId,
        status: 'deferred',
        reply: '450 4.2.1 try later',
        failureKind: 'reply',
      },
      { recipientId: c, queueId, status: 'failed', reply: '550 5.1.1 no such user' },
    ],
  });
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
  const [retry] = await lease();
  assert.ok(retry);
  await record({
    leaseId: retry.leaseId,
    domain: 'one.example',
    outcomes: [{ recipientId: b, queueId, status: 'delivered', reply: '250 2.0.0 ok' }],
  });
  const done = await pool.query(
    'SELECT body IS NULL AS gone, completed_at IS NOT NULL AS completed FROM messages',
  );
  assert.equal(done.rows[0].gone, true);
  assert.equal(done.rows[0].completed, true);
});

test('stale result cannot undo a newer lease, but a delivery always counts', async () => {
  const queueId = await storeMessage(['a@one.example']);
  const [first] = await lease({ leaseMs: 1 });
  assert.ok(first);
  await new Promise((resolve) => setTimeout(resolve, 20));
  await reclaimExpiredLeases(pool);
  const [second] = await lease();
  assert.ok(second);
  const id = recipientsOf(first)[0]?.id as string;
  const stale = await record({
    leaseId: first.leaseId,
    domain: 'one.example',
    outcomes: [{ recipientId: id, queueId, status: 'failed', reply: '550 5.1.1 gone' }],
  });
  assert.equal(stale.length, 0);
  assert.equal((await recipientRows(queueId))[0]?.state, 'active');
  const delivered = await record({
    leaseId: first.leaseId,
    domain: 'one.example',
    outcomes: [{ recipientId: id, queueId, status: 'delivered', reply: '250 ok' }],
  });
  assert.equal(delivered.length, 1);
  assert.equal((await recipientRows(queueId))[0]?.state, 'delivered');
});

test('unreachable destination defers new mail until reachable', async () => {
  await markUnreachable(
    pool,
    ['down.example'],
    { minMs: 2000, maxMs: 15_000 },
    { reply: 'connect to mx.down.example[192.0.2.25]:25: Connection refused' },
  );
  const waiting = await storeMessage(['a@down.example']);
  const other = await storeMessage(['b@up.example']);

  const jobs = await lease();
  assert.deepEqual(
    jobs.map((job) => job.domain),
    ['up.example'],
  );
  const [suspended] = await recipientRows(waiting);
  assert.equal(suspended?.state, 'deferred');
  assert.equal(suspended?.attempts, 0);
  assert.ok((suspended?.delaySeconds ?? 0) > 1, 'waits at least until the next probe');
  assert.equal((await recipientRows(other))[0]?.state, 'active');
  const reason = await pool.query<{ lastReply: string }>(
    'SELECT last_reply AS "lastReply" FROM recipients WHERE message_id = $1',
    [waiting],
  );
  assert.equal(
    reason.rows[0]?.lastReply,
    'connect to mx.down.example[192.0.2.25]:25: Connection refused',
  );

  assert.equal(await markReachable(pool, 'down.example'), 1);
  const [resumed] = await lease();
  assert.equal(resumed?.domain, 'down.example');
  assert.deepEqual(
    recipientsOf(resumed).map((recipient) => recipient.address),
    ['a@down.example'],
  );
});

test('untried recipients are due at once without an attempt', async () => {
  const queueId = await storeMessage(['a@one.example', 'b@one.example']);
  const [first] = await lease();
  assert.ok(first);
  const [a, b] = recipientsOf(first).map((recipient) => recipient.id) as [string, string];
  await record({
    leaseId: first.leaseId,
    domain: 'one.example',
    outcomes: [
      {
        recipientId: a,
        queueId,
        status: 'deferred',
        reply: '451 4.3.0 busy',
        failureKind: 'reply',
      },
      {
        recipientId: b,
        queueId,
        status: 'deferred',
        reply: '451 4.3.0 busy',
        failureKind: 'reply',
      },
    ],
  });
  await pool.query('UPDATE recipients SET next_attempt_at = now() WHERE message_id = $1', [
    queueId,
  ]);
  const [second] = await lease();
  assert.ok(second);

  const changed = await record({
    leaseId: second.leaseId,
    domain: 'one.example',
    outcomes: [
      { recipientId: a, queueId, status: 'delivered', reply: '250 2.0.0 ok' },
      {
        recipientId: b,
        queueId,
        status: 'deferred',
        reply: '451 4.4.7 not attempted: the lease has 10 ms left',
        failureKind: 'notAttempted',
      },
    ],
  });
  assert.equal(changed.length, 2);
  const rows = await pool.query<{
    state: string;
    attempts: number;
    lastReply: string;
    failureKind: string | null;
    due: boolean;
    leased: boolean;
  }>(
    `SELECT state, attempts, last_reply AS "lastReply", last_failure_kind AS "failureKind",
            next_attempt_at <= now() AS due, lease_id IS NOT NULL AS leased
     FROM recipients WHERE id = $1`,
    [b],
  );
  const untried = rows.rows[0];
  assert.equal(untried?.state, 'deferred');
  assert.equal(untried?.attempts, 1, 'the hand-back counts no attempt');
  assert.equal(untried?.lastReply, '451 4.3.0 busy', 'the last real reply stays');
  assert.equal(untried?.failureKind, 'reply');
  assert.equal(untried?.due, true);
  assert.equal(untried?.leased, false);
  const attempts = await pool.query<{ count: number }>(
    'SELECT count(*)::int AS count FROM delivery_attempts WHERE recipient_id = $1',
    [b],
  );
  assert.equal(attempts.rows[0]?.count, 1, 'no delivery_attempts row for the hand-back');
  const [third] = await lease();
  assert.deepEqual(
    recipientsOf(third).map((recipient) => recipient.address),
    ['b@one.example'],
  );
});

/** Leases the one recipient of a new message and records one deferral of it as queue-store does. */
async function recordDeferral(outcome: Partial<RecipientOutcome>): Promise<string> {
  const queueId = await storeMessage(['a@one.example']);
  const [job] = await lease();
  assert.ok(job);
  const handler = createResultsHandler({
    pool,
    logger,
    backoff,
    probes: { minMs: 2000, maxMs: 5000 },
    bounces: { reportingMta: 'mx2.test', fullContentLimit: 50_000, bounceLifetimeMs: 86_400_000 },
    onRecorded: () => undefined,
  });
  const result: DeliveryResult = {
    kind: 'delivery',
    leaseId: job.leaseId,
    domain: 'one.example',
    attemptedAt: Date.now(),
    outcomes: [
      {
        recipientId: recipientsOf(job)[0]?.id as string,
        queueId,
        status: 'deferred',
        reply: '451 4.4.1 no connection',
        failureKind: 'connection',
        ...outcome,
      },
    ],
  };
  const message = { content: Buffer.from(JSON.stringify(result)) };
  await handler(message as Parameters<typeof handler>[0]);
  return queueId;
}

async function probeCount(): Promise<number> {
  const probes = await pool.query<{ count: number }>(
    'SELECT count(*)::int AS count FROM destination_probes',
  );
  return probes.rows[0]?.count ?? 0;
}

test('untried-only result leaves probing alone', async () => {
  const queueId = await recordDeferral({
    reply: '451 4.4.7 not attempted: the lease has 10 ms left',
    failureKind: 'notAttempted',
  });
  assert.equal(await probeCount(), 0, 'a hand-back does not mark the destination unreachable');
  const [row] = await recipientRows(queueId);
  assert.equal(row?.state, 'deferred');
  assert.equal(row?.attempts, 0);
});

test('no reply starts probing the destination', async () => {
  await recordDeferral({});
  assert.equal(await probeCount(), 1);
});

test('421 reply leaves probing alone', async () => {
  const queueId = await recordDeferral({
    reply: '421 4.3.2 shutting down',
    remoteMta: 'primary.one.example',
  });
  assert.equal(await probeCount(), 0, 'a server that replied is not probed');
  const [row] = await recipientRows(queueId);
  assert.equal(row?.state, 'deferred');
  assert.equal(row?.attempts, 1);
  assert.ok((row?.delaySeconds ?? 0) > 50, 'the recipient waits for its backoff');
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
