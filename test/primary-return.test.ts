/**
 * The backlog reaches the primary within seconds of its return, not at the next backoff
 * step: probes notice it, ETRN asks for it, and deliveries never exceed the per-destination
 * connection limit while several workers drain a large backlog.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { newQueueId } from '@secondary-mx/contracts';
import { createPool, insertMessage, type Pool } from '@secondary-mx/db';
import { createLogger } from '@secondary-mx/logger';
import { FakePrimary, SmtpClient, type Suite, startSuite } from '@secondary-mx/testkit';
import pg from 'pg';

let suite: Suite;
let pool: Pool;
const primaries: FakePrimary[] = [];

async function addDomain(name: string, primary: FakePrimary): Promise<void> {
  const client = new pg.Client({ connectionString: suite.environment.database.url });
  await client.connect();
  await client.query(
    `INSERT INTO domains (name, member_number, state, primary_hosts) VALUES ($1, '1', 'approved', $2)`,
    [name, [primary.address]],
  );
  await client.end();
}

async function queueMessages(domain: string, count: number): Promise<string[]> {
  const queueIds: string[] = [];
  for (let i = 0; i < count; i++) {
    const queueId = newQueueId();
    await insertMessage(pool, {
      queueId,
      sender: 'alice@sender.example',
      recipients: [{ envelope: { address: `user${i}@${domain}` }, domain }],
      body: Buffer.from(`Subject: ${domain} ${i}\r\nX-Queue-Id: ${queueId}\r\n\r\nbody\r\n`),
      bodyType: '7BIT',
      smtpUtf8: false,
      clientAddress: '192.0.2.1',
      receivedAt: new Date(),
      expiresAt: new Date(Date.now() + 86_400_000),
    });
    queueIds.push(queueId);
  }
  return queueIds;
}

async function countByState(domain: string): Promise<Record<string, number>> {
  const result = await pool.query<{ state: string; count: number }>(
    'SELECT state, count(*)::int AS count FROM recipients WHERE domain = $1 GROUP BY state',
    [domain],
  );
  return Object.fromEntries(result.rows.map((row) => [row.state, row.count]));
}

async function until(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await probe()) {
      return Date.now() - started;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${suite.logs()}`);
}

before(async () => {
  suite = await startSuite({
    services: [
      'queue-store',
      'greylist',
      'ingress',
      'admin-api',
      'delivery-worker',
      'delivery-worker',
      'delivery-worker',
    ],
    env: {
      DNS_SERVERS: '127.0.0.1:9',
      MX_GREYLIST_DELAY: '0s',
      // A retry is an hour away, so only probes, flushes and ETRN can bring mail out early.
      MX_RETRY_MIN: '1h',
      MX_RETRY_MAX: '1h',
      MX_PROBE_INTERVAL_MIN: '1s',
      MX_PROBE_INTERVAL_MAX: '2s',
      MX_SCHEDULER_INTERVAL: '200ms',
      MX_CONNECT_TIMEOUT: '1s',
      MX_DESTINATION_CONCURRENCY: '10',
    },
  });
  pool = createPool(suite.environment.database.url, createLogger('test', 'silent'));
});

after(async () => {
  await pool?.end();
  await suite?.stop();
  await Promise.all(primaries.map((primary) => primary.stop()));
});

test('a returning primary gets the backlog within 10 seconds without a flush', async () => {
  const primary = await FakePrimary.create();
  primaries.push(primary);
  await addDomain('down.example', primary);
  await queueMessages('down.example', 100);
  await until(
    'all 100 to be deferred',
    async () => (await countByState('down.example')).deferred === 100,
    20_000,
  );

  await new Promise((resolve) => setTimeout(resolve, 3000));
  await primary.start();
  const elapsed = await until(
    'all 100 delivered',
    async () => (await countByState('down.example')).delivered === 100,
    10_000,
  );
  assert.ok(elapsed < 10_000, `delivered in ${elapsed} ms`);
  assert.equal(primary.messages.length, 100);
});

test('ETRN from the primary flushes its domain; another domain is refused', async () => {
  const primary = await FakePrimary.create();
  primaries.push(primary);
  await primary.start();
  let accepting = false;
  primary.onRcpt = () =>
    accepting ? undefined : { code: 452, message: '4.3.1 Insufficient system storage' };
  await addDomain('etrn.example', primary);
  await suite.api('PATCH', '/api/domains/etrn.example', { primaryHosts: [primary.address] });
  await queueMessages('etrn.example', 5);
  await until(
    'the 452 deferrals',
    async () => (await countByState('etrn.example')).deferred === 5,
    15_000,
  );

  accepting = true;
  const { client } = await SmtpClient.connect(suite.smtpPort);
  await client.command('EHLO primary.etrn.example');
  const refused = await client.command('ETRN other.example');
  assert.match(refused.text, /^459 4\.7\.1 /);
  for (let i = 0; i < 50; i++) {
    const reply = await client.command('ETRN etrn.example');
    if (reply.code === 250) {
      break;
    }
    // ingress may not have loaded the new domain yet.
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  client.close();
  await until(
    'the flushed mail to arrive',
    async () => (await countByState('etrn.example')).delivered === 5,
    10_000,
  );
  assert.equal(primary.messages.length, 5);
});

test('three workers draining 1,000 messages keep within 10 connections', async () => {
  const primary = await FakePrimary.create();
  primaries.push(primary);
  await primary.start();
  primary.onData = () => new Promise((resolve) => setTimeout(() => resolve(undefined), 2));
  await addDomain('busy.example', primary);
  const queueIds = await queueMessages('busy.example', 1000);
  await until(
    'all 1,000 delivered',
    async () => (await countByState('busy.example')).delivered === 1000,
    60_000,
  );
  assert.ok(primary.maxSessions <= 10, `at most 10 sessions at once, saw ${primary.maxSessions}`);
  assert.ok(primary.maxSessions >= 2, 'deliveries ran in parallel');
  const received = primary.messages.map(
    (message) => /X-Queue-Id: (\w+)/.exec(message.raw.toString('latin1'))?.[1],
  );
  assert.equal(received.length, 1000, 'each delivered once');
  assert.deepEqual(new Set(received), new Set(queueIds));
  assert.ok(
    primary.totalSessions < 1000,
    `several messages per connection: ${primary.totalSessions} sessions`,
  );
});
