/**
 * queue-store's /metrics and /health against the local PostgreSQL and RabbitMQ. PostgreSQL is
 * reached through a TCP proxy, so the last test can take it away from this queue-store alone.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Broker } from '@secondary-mx/amqp';
import { loadSettings } from '@secondary-mx/config';
import {
  encodeFrame,
  newQueueId,
  QUEUE,
  SpoolStoreReplySchema,
  type SpoolStoreRequest,
} from '@secondary-mx/contracts';
import { createPool, insertMessage, type Pool, withTransaction } from '@secondary-mx/db';
import { createLogger } from '@secondary-mx/logger';
import {
  fetchHealth,
  metricValue,
  scrapeMetrics,
  startTcpProxy,
  type TcpProxy,
  testEnvironment,
  waitForHealth,
} from '@secondary-mx/testkit';
import { startQueueStore } from '../src/service.ts';
import { QUEUE_STORE_SETTINGS } from '../src/settings.ts';

const logger = createLogger('queue-store-metrics-test', process.env.TEST_LOG_LEVEL ?? 'silent');
const environment = testEnvironment('qs_metrics');
let proxy: TcpProxy;
let queueStore: Awaited<ReturnType<typeof startQueueStore>>;
let port: number;
let pool: Pool;
let client: Broker;

const HOUR_MS = 3_600_000;

function series(domain: string, state: string): string {
  return `secondary_mx_spool_recipients{domain="${domain}",state="${state}"}`;
}

/** Sums the waiting states of one domain, since the scheduler may lease a queued recipient. */
function waiting(text: string, domain: string): number {
  return ['queued', 'active', 'deferred']
    .map((state) => metricValue(text, series(domain, state)) ?? Number.NaN)
    .reduce((sum, count) => sum + count, 0);
}

/**
 * Stores a message for one recipient. A state other than queued is set in the same transaction,
 * so the scheduler never leases the recipient first.
 */
async function insert(
  recipient: string,
  receivedAgoMs: number,
  options: { expiresInMs?: number; state?: 'hold' | 'deferred' } = {},
): Promise<string> {
  const queueId = newQueueId();
  const receivedAt = new Date(Date.now() - receivedAgoMs);
  await withTransaction(pool, async (db) => {
    await insertMessage(db, {
      queueId,
      sender: 'alice@sender.example',
      recipients: [
        { envelope: { address: recipient }, domain: recipient.slice(recipient.indexOf('@') + 1) },
      ],
      body: Buffer.from('Subject: metrics\r\n\r\nbody\r\n'),
      bodyType: '7BIT',
      smtpUtf8: false,
      clientAddress: '192.0.2.1',
      receivedAt,
      expiresAt: new Date(Date.now() + (options.expiresInMs ?? 24 * HOUR_MS)),
    });
    if (options.state) {
      await db.query(
        `UPDATE recipients SET state = $2, next_attempt_at = now() + interval '1 hour'
         WHERE message_id = $1`,
        [queueId, options.state],
      );
    }
  });
  return queueId;
}

async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

before(async () => {
  const database = new URL(environment.database.url);
  proxy = await startTcpProxy(database.hostname, Number(database.port || 5432));
  database.hostname = '127.0.0.1';
  database.port = String(proxy.port);
  queueStore = await startQueueStore(
    loadSettings(QUEUE_STORE_SETTINGS, {
      ...environment.env,
      DATABASE_URL: database.toString(),
      MX_HOSTNAME: 'mx2.example.net',
      MX_QUEUE_STORE_METRICS_LISTEN: '127.0.0.1:0',
      MX_SCHEDULER_INTERVAL: '300ms',
      // Off, so the held message of two days ago causes no delay DSN.
      MX_DELAY_WARNINGS: '',
    }),
    logger,
  );
  port = queueStore.metricsServer?.address.port ?? 0;
  pool = createPool(environment.database.url, logger);
  await pool.query(
    `INSERT INTO domains (name, member_number, state) VALUES
       ('member.example', '1001', 'approved'), ('quiet.example', '1002', 'approved')`,
  );
  client = new Broker({
    url: environment.env.AMQP_URL as string,
    prefix: environment.amqpPrefix,
    logger,
    connectionName: 'queue-store-metrics-test',
  });
  await client.start();
});

after(async () => {
  await client?.stop();
  await queueStore?.stop();
  await pool?.end();
  await proxy?.close();
  await environment.database.drop();
});

test('health is ok with both backends', async () => {
  assert.notEqual(port, 0);
  const health = await fetchHealth(port);
  assert.equal(health.status, 200);
  assert.deepEqual(health.body, { status: 'ok', checks: { database: 'ok', rabbitmq: 'ok' } });
});

test('spool size by domain and the oldest waiting message', async () => {
  await insert('bob@member.example', 2 * HOUR_MS);
  await insert('carol@member.example', 60_000);
  await insert('dave@nonmember.example', 60_000);
  await insert('erin@member.example', 48 * HOUR_MS, { state: 'hold' });

  const text = await scrapeMetrics(port);
  assert.equal(waiting(text, 'member.example'), 2);
  assert.equal(metricValue(text, series('member.example', 'hold')), 1);
  assert.equal(metricValue(text, series('member.example', 'delivered')), 0);
  assert.equal(waiting(text, 'quiet.example'), 0, 'a member domain without mail has zeros');
  assert.equal(waiting(text, '(other)'), 1, 'a non-member domain is not a label of its own');
  assert.doesNotMatch(text, /nonmember\.example/);

  const oldest = metricValue(text, 'secondary_mx_spool_oldest_waiting_seconds{kind="mail"}');
  assert.ok(oldest !== undefined, text);
  // The held message is older but waits for an administrator, so it is left out.
  assert.ok(oldest >= 2 * 3600, `oldest waiting: ${oldest}`);
  assert.ok(oldest < 2 * 3600 + 60, `oldest waiting: ${oldest}`);
  assert.equal(metricValue(text, 'secondary_mx_spool_oldest_waiting_seconds{kind="dsn"}'), 0);
  assert.equal(metricValue(text, 'secondary_mx_database_up'), 1);
  assert.equal(metricValue(text, 'secondary_mx_rabbitmq_up'), 1);
});

test('stored messages count once per queue id', async () => {
  const before = metricValue(await scrapeMetrics(port), 'secondary_mx_messages_stored_total');
  assert.equal(before, 0, 'direct inserts are not counted');
  const header: SpoolStoreRequest = {
    queueId: newQueueId(),
    session: 'metrics-test',
    sender: 'alice@sender.example',
    recipients: [{ address: 'frank@member.example' }],
    bodyType: '7BIT',
    smtpUtf8: false,
    clientAddress: '192.0.2.1',
    receivedAt: new Date().toISOString(),
    deadline: Date.now() + 10_000,
  };
  for (let i = 0; i < 2; i++) {
    const content = await client.call(
      QUEUE.spoolStore,
      encodeFrame(header, Buffer.from('Subject: stored\r\n\r\nbody\r\n')),
      10_000,
    );
    const reply = SpoolStoreReplySchema.parse(JSON.parse(content.toString('utf8')));
    assert.equal(reply.ok, true, JSON.stringify(reply));
  }
  const text = await scrapeMetrics(port);
  assert.equal(metricValue(text, 'secondary_mx_messages_stored_total'), 1);
});

test('an expired message counts its DSN', async () => {
  await insert('gina@member.example', 60_000, { expiresInMs: -1000, state: 'deferred' });
  await until('the expiry DSN', async () => {
    const text = await scrapeMetrics(port);
    return metricValue(text, 'secondary_mx_dsns_total{event="expired"}') === 1;
  });
  const text = await scrapeMetrics(port);
  assert.equal(metricValue(text, 'secondary_mx_dsns_total{event="failed"}'), 0);
  assert.equal(metricValue(text, series('member.example', 'expired')), 1);
  assert.equal(waiting(text, '(other)'), 2, 'the DSN to sender.example waits as well');
  const dsnAge = metricValue(text, 'secondary_mx_spool_oldest_waiting_seconds{kind="dsn"}');
  assert.ok(dsnAge !== undefined, text);
  assert.ok(dsnAge < 60, `oldest DSN: ${dsnAge}`);
});

test('without PostgreSQL health is 503 and scrapes still work', async () => {
  await proxy.close();
  const health = await waitForHealth(port, 503);
  assert.deepEqual(health.body, {
    status: 'unavailable',
    checks: { database: 'unreachable', rabbitmq: 'ok' },
  });

  const text = await scrapeMetrics(port);
  assert.doesNotMatch(text, /^secondary_mx_spool_recipients\{/m, 'no stale spool figures');
  assert.equal(metricValue(text, 'secondary_mx_rabbitmq_up'), 1);
  // A scrape renders its counters before its own spool read fails, so a later one shows that.
  await until('the failed connects to be counted', async () => {
    const later = await scrapeMetrics(port);
    return (metricValue(later, 'secondary_mx_database_errors_total{kind="connect"}') ?? 0) >= 1;
  });
});
