/**
 * Ingress /health and its SMTP metrics against the local RabbitMQ, PostgreSQL and Redis. Ingress
 * starts alone, so its health names what it waits for, then queue-store and the greylist
 * service join it.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { loadSettings } from '@secondary-mx/config';
import { createLogger } from '@secondary-mx/logger';
import {
  fetchHealth,
  freePort,
  metricValue,
  SmtpClient,
  scrapeMetrics,
  startDnsServer,
  type TestDnsServer,
  testEnvironment,
  waitForHealth,
} from '@secondary-mx/testkit';
import { createGreylistService, type GreylistService } from '../../greylist/src/service.ts';
import { SETTING_NAMES as GREYLIST_SETTINGS } from '../../greylist/src/settings.ts';
import { startQueueStore } from '../../queue-store/src/service.ts';
import { QUEUE_STORE_SETTINGS } from '../../queue-store/src/settings.ts';
import { startIngress } from '../src/service.ts';
import { INGRESS_SETTINGS } from '../src/settings.ts';

const logger = createLogger('ingress-health-test', process.env.TEST_LOG_LEVEL ?? 'silent');
const environment = testEnvironment('ingress_health');
let dns: TestDnsServer;
let env: Record<string, string>;
let smtpPort: number;
let port: number;
const stops: (() => Promise<void>)[] = [];

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
  dns = await startDnsServer({});
  smtpPort = await freePort();
  env = {
    ...environment.env,
    DNS_SERVERS: dns.server,
    MX_HOSTNAME: 'mx2.example.net',
    MX_SMTP_LISTEN: `127.0.0.1:${smtpPort}`,
    MX_INGRESS_METRICS_LISTEN: '127.0.0.1:0',
    MX_PREGREET_WAIT: '0s',
    MX_MAX_ERRORS: '2',
    MX_GREYLIST_ON_ERROR: 'closed',
    MX_SCHEDULER_INTERVAL: '60s',
  };
  const ingress = await startIngress(loadSettings(INGRESS_SETTINGS, env), logger);
  stops.push(() => ingress.stop());
  port = ingress.metricsServer?.address.port ?? 0;
});

after(async () => {
  for (const stop of stops.reverse()) {
    await stop();
  }
  await dns?.close();
  await environment.database.drop();
});

test('health names what ingress waits for', async () => {
  assert.notEqual(port, 0);
  await until('the RabbitMQ connection', async () => {
    return (await fetchHealth(port)).body.checks.rabbitmq === 'ok';
  });
  const health = await fetchHealth(port);
  assert.equal(health.status, 503);
  assert.deepEqual(health.body, {
    status: 'unavailable',
    checks: {
      rabbitmq: 'ok',
      'queue-store': 'not consuming',
      domains: 'not loaded',
      greylist: 'not consuming',
    },
  });
});

test('health turns ok once queue-store and greylist serve', async () => {
  const queueStore = await startQueueStore(loadSettings(QUEUE_STORE_SETTINGS, env), logger);
  stops.push(() => queueStore.stop());
  const greylist: GreylistService = createGreylistService(
    loadSettings(GREYLIST_SETTINGS, env),
    logger,
  );
  await greylist.start();
  stops.push(() => greylist.stop());

  const health = await waitForHealth(port, 200);
  assert.deepEqual(health.body, {
    status: 'ok',
    checks: { rabbitmq: 'ok', 'queue-store': 'ok', domains: 'ok', greylist: 'ok' },
  });
});

test('replies are counted by code, the closing 421 too', async () => {
  const before = await scrapeMetrics(port);
  const sessions = metricValue(before, 'secondary_mx_smtp_sessions_total') ?? 0;

  const { client, greeting } = await SmtpClient.connect(smtpPort);
  assert.equal(greeting.code, 220);
  assert.equal((await client.command('EHLO client.example')).code, 250);
  const open = await scrapeMetrics(port);
  assert.equal(metricValue(open, 'secondary_mx_smtp_sessions_active'), 1);
  assert.equal(metricValue(open, 'secondary_mx_smtp_sessions_total'), sessions + 1);

  assert.equal((await client.command('BOGUS one')).code, 500);
  const last = await client.command('BOGUS two');
  assert.equal(last.code, 500, last.text);
  const closing = await client.read();
  assert.match(closing.text, /^421 4\.7\.0 .*too many errors/);
  await client.closed();

  await until('the session to close', async () => {
    const text = await scrapeMetrics(port);
    return metricValue(text, 'secondary_mx_smtp_sessions_active') === 0;
  });
  const after = await scrapeMetrics(port);
  const replies = (code: number) =>
    (metricValue(after, `secondary_mx_smtp_replies_total{code="${code}"}`) ?? 0) -
    (metricValue(before, `secondary_mx_smtp_replies_total{code="${code}"}`) ?? 0);
  assert.equal(replies(220), 1);
  assert.equal(replies(250), 1);
  assert.equal(replies(500), 2);
  assert.equal(replies(421), 1);
  assert.equal(metricValue(after, 'secondary_mx_redis_up'), 1);
  assert.equal(metricValue(after, 'secondary_mx_rabbitmq_errors_total{kind="connection"}'), 0);
});
