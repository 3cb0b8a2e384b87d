/**
 * Greylisting through ingress with the greylist service and queue-store in this process.
 * Clients connect from different loopback addresses (127.0.0.2, 127.1.0.3, ...), which are
 * in different /24 networks, and the test's DNS server gives some of them forward-confirmed
 * names under one domain.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadSettings } from '@secondary-mx/config';
import { createLogger } from '@secondary-mx/logger';
import {
  deleteBrokerObjects,
  freePort,
  LOCAL_REDIS_URL,
  reverseName,
  SmtpClient,
  startDnsServer,
  startTcpProxy,
  type TcpProxy,
  type TestDnsServer,
  testEnvironment,
} from '@secondary-mx/testkit';
import pg from 'pg';
import { createGreylistService, type GreylistService } from '../../greylist/src/service.ts';
import { SETTING_NAMES as GREYLIST_SETTINGS } from '../../greylist/src/settings.ts';
import { startQueueStore } from '../../queue-store/src/service.ts';
import { QUEUE_STORE_SETTINGS } from '../../queue-store/src/settings.ts';
import { startIngress } from '../src/service.ts';
import { INGRESS_SETTINGS } from '../src/settings.ts';

const environment = testEnvironment('ingress_greylist');
const logger = createLogger('test', process.env.TEST_LOG_LEVEL ?? 'silent');
const POOL_A = '127.0.0.2';
const POOL_B = '127.1.0.3';

let dns: TestDnsServer;
/** Proxy between the greylist service and Redis, so a test can make Redis stop replying. */
let redisProxy: TcpProxy;
let database: pg.Client;
let greylist: GreylistService;
let greylistStopped = false;
let openPort: number;
let closedPort: number;
let openMetricsPort: number;
let closedMetricsPort: number;
const stops: (() => Promise<void>)[] = [];

before(async () => {
  dns = await startDnsServer({
    [reverseName(POOL_A)]: { PTR: ['mail-a.outbound.protection.example'] },
    'mail-a.outbound.protection.example': { A: [POOL_A] },
    [reverseName(POOL_B)]: { PTR: ['mail-b.outbound.protection.example'] },
    'mail-b.outbound.protection.example': { A: [POOL_B] },
    // Sender domains must resolve, or ingress rejects MAIL FROM with 450 4.1.8.
    'sender.example': { MX: [{ preference: 10, exchange: 'mx.sender.example' }] },
    'example.net': { MX: [{ preference: 10, exchange: 'mx.example.net' }] },
  });
  openPort = await freePort();
  closedPort = await freePort();
  openMetricsPort = await freePort();
  closedMetricsPort = await freePort();
  const env = {
    ...environment.env,
    DNS_SERVERS: dns.server,
    MX_HOSTNAME: 'mx2.example.net',
    MX_SPOOL_TIMEOUT: '5s',
    MX_SCHEDULER_INTERVAL: '60s',
    MX_GREYLIST_DELAY: '1s',
    MX_GREYLIST_RETRY_WINDOW: '60s',
    MX_GREYLIST_TIMEOUT: '1s',
  };

  const queueStore = await startQueueStore(loadSettings(QUEUE_STORE_SETTINGS, env), logger);
  stops.push(() => queueStore.stop());
  database = new pg.Client({ connectionString: environment.database.url });
  await database.connect();
  await database.query(
    `INSERT INTO domains (name, member_number, state) VALUES ('member.example', '1001', 'approved')`,
  );
  const redisUrl = new URL(LOCAL_REDIS_URL);
  redisProxy = await startTcpProxy(redisUrl.hostname, Number(redisUrl.port || 6379));
  redisUrl.hostname = '127.0.0.1';
  redisUrl.port = String(redisProxy.port);
  greylist = createGreylistService(
    loadSettings(GREYLIST_SETTINGS, { ...env, REDIS_URL: redisUrl.toString() }),
    logger,
  );
  await greylist.start();

  for (const [port, metricsPort, policy] of [
    [openPort, openMetricsPort, 'open'],
    [closedPort, closedMetricsPort, 'closed'],
  ] as const) {
    const ingress = await startIngress(
      loadSettings(INGRESS_SETTINGS, {
        ...env,
        MX_SMTP_LISTEN: `127.0.0.1:${port}`,
        MX_INGRESS_METRICS_LISTEN: `127.0.0.1:${metricsPort}`,
        MX_GREYLIST_ON_ERROR: policy,
      }),
      logger,
    );
    stops.unshift(() => ingress.stop());
    await waitUntilRelayed(port);
  }
});

after(async () => {
  if (!greylistStopped) {
    await greylist?.stop();
  }
  for (const stop of stops) {
    await stop();
  }
  await database?.end();
  await dns?.close();
  await redisProxy?.close();
  await environment.database.drop();
  await deleteBrokerObjects(environment.amqpPrefix);
});

/** Waits until ingress has loaded the member domains and replies to RCPT with 250 or 451. */
async function waitUntilRelayed(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const client = await openTransaction(port, '127.0.0.1', '<probe@sender.example>');
    const reply = await client.command('RCPT TO:<probe@member.example>');
    client.close();
    if (reply.code === 250 || (reply.code === 451 && /greylisted/.test(reply.text))) {
      return;
    }
    await sleep(100);
  }
  throw new Error('ingress did not relay member.example');
}

async function openTransaction(port: number, from: string, mailFrom: string) {
  const { client } = await SmtpClient.connect(port, '127.0.0.1', from);
  assert.equal((await client.command('EHLO client.example')).code, 250);
  assert.equal((await client.command(`MAIL FROM:${mailFrom}`)).code, 250);
  return client;
}

/** Sends a short message in an open transaction; returns the queue id from the 250 reply. */
async function sendData(client: SmtpClient, subject: string): Promise<string> {
  assert.equal((await client.command('DATA')).code, 354);
  client.write(`Subject: ${subject}\r\n\r\nbody\r\n.\r\n`);
  const reply = await client.read();
  const match = /^250 2\.0\.0 Ok: queued as (\S+)$/.exec(reply.text);
  assert.ok(match, reply.text);
  return match[1] as string;
}

async function storedBody(queueId: string): Promise<string> {
  const stored = await database.query('SELECT body FROM messages WHERE id = $1', [queueId]);
  assert.equal(stored.rowCount, 1);
  return (stored.rows[0] as { body: Buffer }).body.toString('latin1');
}

async function scrape(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(response.status, 200);
  return response.text();
}

function metricValue(text: string, series: string): number {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe('greylisting through ingress', () => {
  test('greylist deferrals are not errors', async () => {
    // MX_MAX_ERRORS is 20 here, so 25 deferrals would end the session if they counted.
    const client = await openTransaction(openPort, '127.4.0.9', '<many@sender.example>');
    for (let i = 1; i <= 25; i++) {
      const reply = await client.command(`RCPT TO:<many-${i}@member.example>`);
      assert.match(reply.text, /^451 4\.7\.1 /, `RCPT ${i}`);
    }
    const noop = await client.command('NOOP');
    client.close();
    assert.equal(noop.code, 250, noop.text);
  });

  test('named pool passes on its second attempt', async () => {
    const mailFrom = '<prvs=1234567890=bob@example.net>';
    const first = await openTransaction(openPort, POOL_A, mailFrom);
    const deferred = await first.command('RCPT TO:<pool@member.example>');
    first.close();
    assert.match(deferred.text, /^451 4\.7\.1 <pool@member\.example>: greylisted, try again in/);

    await sleep(1_100);
    const retry = await openTransaction(openPort, POOL_B, '<prvs=0987654321=bob@example.net>');
    assert.equal((await retry.command('RCPT TO:<pool@member.example>')).code, 250);
    const queueId = await sendData(retry, 'retried');

    // The next message of the session passes as whitelisted and carries no X-Greylist.
    assert.equal((await retry.command('MAIL FROM:<prvs=5555555555=bob@example.net>')).code, 250);
    assert.equal((await retry.command('RCPT TO:<pool@member.example>')).code, 250);
    const laterId = await sendData(retry, 'later');
    retry.close();

    const body = await storedBody(queueId);
    assert.match(
      body,
      /^Received: from client\.example \(mail-b\.outbound\.protection\.example \[127\.1\.0\.3\]\)\r\n/,
    );
    assert.match(
      body,
      /\r\nX-Greylist: delayed [1-9]\d* seconds by secondary-mx at mx2\.example\.net; \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000\r\nSubject: retried\r\n/,
    );
    const later = await storedBody(laterId);
    assert.doesNotMatch(later, /X-Greylist:/);
  });

  test('unnamed clients in other networks stay greylisted', async () => {
    const first = await openTransaction(openPort, '127.2.0.4', '<carol@example.net>');
    assert.equal((await first.command('RCPT TO:<unnamed@member.example>')).code, 451);
    first.close();

    await sleep(1_100);
    const retry = await openTransaction(openPort, '127.3.0.5', '<carol@example.net>');
    const reply = await retry.command('RCPT TO:<unnamed@member.example>');
    retry.close();
    assert.match(reply.text, /^451 4\.7\.1 /);
  });

  test('ingress counts verdicts by result', async () => {
    const text = await scrape(openMetricsPort);
    const deferred = 'secondary_mx_greylist_verdicts_total{result="defer",reason="new"}';
    const retried = 'secondary_mx_greylist_verdicts_total{result="pass",reason="retried"}';
    const whitelisted = 'secondary_mx_greylist_verdicts_total{result="pass",reason="whitelisted"}';
    assert.ok(metricValue(text, deferred) >= 3, text);
    assert.equal(metricValue(text, retried), 1, text);
    assert.equal(metricValue(text, whitelisted), 1, text);
  });
});

const OPEN_SERIES = 'secondary_mx_greylist_unavailable_total{policy="open"}';
const CLOSED_SERIES = 'secondary_mx_greylist_unavailable_total{policy="closed"}';

/** Sends one RCPT and returns the reply with the growth of the ingress's unavailable counter. */
async function rcptWithoutVerdict(policy: 'open' | 'closed', recipient: string) {
  const port = policy === 'open' ? openPort : closedPort;
  const metricsPort = policy === 'open' ? openMetricsPort : closedMetricsPort;
  const series = policy === 'open' ? OPEN_SERIES : CLOSED_SERIES;
  const before = metricValue(await scrape(metricsPort), series);
  const client = await openTransaction(port, '127.4.0.6', '<dave@example.net>');
  const reply = await client.command(`RCPT TO:<${recipient}>`);
  client.close();
  const counted = metricValue(await scrape(metricsPort), series) - before;
  return { reply, counted };
}

describe('Redis not replying', () => {
  before(() => redisProxy.pause());
  after(() => redisProxy.resume());

  test('open policy accepts and counts', async () => {
    const { reply, counted } = await rcptWithoutVerdict('open', 'redis-open@member.example');
    assert.equal(reply.code, 250, reply.text);
    assert.equal(counted, 1);
  });

  test('closed policy defers and counts', async () => {
    const { reply, counted } = await rcptWithoutVerdict('closed', 'redis-closed@member.example');
    assert.equal(
      reply.text,
      '451 4.3.0 <redis-closed@member.example>: greylisting is unavailable, try again later',
    );
    assert.equal(counted, 1);
  });
});

describe('greylist service stopped', () => {
  before(async () => {
    await greylist.stop();
    greylistStopped = true;
  });

  test('open policy accepts and counts', async () => {
    const { reply, counted } = await rcptWithoutVerdict('open', 'outage@member.example');
    assert.equal(reply.code, 250, reply.text);
    assert.equal(counted, 1);
  });

  test('closed policy defers with 451 4.3.0 and counts', async () => {
    const { reply, counted } = await rcptWithoutVerdict('closed', 'outage@member.example');
    assert.equal(
      reply.text,
      '451 4.3.0 <outage@member.example>: greylisting is unavailable, try again later',
    );
    assert.equal(counted, 1);
  });
});
