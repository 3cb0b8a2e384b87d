/**
 * The greylist service's /metrics and /health against the local RabbitMQ and Redis. Redis is
 * reached through a TCP proxy, so the last test can take it away from this service alone.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Broker } from '@secondary-mx/amqp';
import { loadSettings } from '@secondary-mx/config';
import { type GreylistCheckRequest, QUEUE } from '@secondary-mx/contracts';
import { createLogger } from '@secondary-mx/logger';
import {
  fetchHealth,
  LOCAL_AMQP_URL,
  LOCAL_REDIS_URL,
  metricValue,
  scrapeMetrics,
  startDnsServer,
  startTcpProxy,
  type TcpProxy,
  type TestDnsServer,
  uniqueName,
  waitForHealth,
} from '@secondary-mx/testkit';
import { Redis } from 'ioredis';
import { createGreylistService, type GreylistService } from '../src/service.ts';
import { SETTING_NAMES } from '../src/settings.ts';

const RUN_ID = uniqueName('smx_greylist_metrics');
const logger = createLogger('greylist-metrics-test', process.env.TEST_LOG_LEVEL ?? 'silent');
let dns: TestDnsServer;
let redisProxy: TcpProxy;
let service: GreylistService;
let client: Broker;
let port: number;

async function call(body: unknown, timeoutMs = 5000): Promise<void> {
  await client.call(QUEUE.greylistCheck, Buffer.from(JSON.stringify(body)), timeoutMs);
}

function request(recipient: string): GreylistCheckRequest {
  return {
    session: 'metrics-test',
    clientAddress: '203.0.113.7',
    sender: 'sender@sender.example',
    recipient,
  };
}

before(async () => {
  dns = await startDnsServer({});
  const redisUrl = new URL(LOCAL_REDIS_URL);
  redisProxy = await startTcpProxy(redisUrl.hostname, Number(redisUrl.port || 6379));
  redisUrl.hostname = '127.0.0.1';
  redisUrl.port = String(redisProxy.port);
  const settings = loadSettings(SETTING_NAMES, {
    AMQP_URL: LOCAL_AMQP_URL,
    REDIS_URL: redisUrl.toString(),
    DNS_SERVERS: dns.server,
    MX_HOSTNAME: 'mx2.example.net',
    MX_AMQP_PREFIX: `${RUN_ID}.`,
    MX_REDIS_PREFIX: `${RUN_ID}:`,
    MX_GREYLIST_METRICS_LISTEN: '127.0.0.1:0',
  });
  service = createGreylistService(settings, logger);
  await service.start();
  port = service.metricsServer?.address.port ?? 0;
  client = new Broker({
    url: LOCAL_AMQP_URL,
    prefix: settings.MX_AMQP_PREFIX,
    logger,
    connectionName: 'greylist-metrics-test',
  });
  await client.start();
});

after(async () => {
  await client?.stop();
  await service?.stop();
  await redisProxy?.close();
  await dns?.close();
  const redis = new Redis(LOCAL_REDIS_URL);
  const keys = await redis.keys(`${RUN_ID}:*`);
  if (keys.length > 0) {
    await redis.del(...keys);
  }
  await redis.quit();
});

test('health is ok with Redis and RabbitMQ', async () => {
  assert.notEqual(port, 0);
  const health = await fetchHealth(port);
  assert.equal(health.status, 200);
  assert.deepEqual(health.body, { status: 'ok', checks: { redis: 'ok', rabbitmq: 'ok' } });
});

test('verdicts are counted by result and reason', async () => {
  await call(request('one@member.example'));
  await call(request('two@member.example'));
  await call({ session: 'metrics-test', clientAddress: '203.0.113.7' });

  const text = await scrapeMetrics(port);
  assert.equal(
    metricValue(text, 'secondary_mx_greylist_checks_total{result="defer",reason="new"}'),
    2,
  );
  assert.equal(
    metricValue(
      text,
      'secondary_mx_greylist_checks_total{result="defer",reason="invalid-request"}',
    ),
    1,
  );
  assert.equal(metricValue(text, 'secondary_mx_redis_up'), 1);
  assert.equal(metricValue(text, 'secondary_mx_redis_errors_total{kind="command"}'), 0);
  assert.equal(metricValue(text, 'secondary_mx_rabbitmq_up'), 1);
  assert.match(text, /^process_cpu_user_seconds_total /m, 'the default process metrics');
});

test('without Redis health is 503 and checks fail', async () => {
  await redisProxy.close();
  const health = await waitForHealth(port, 503);
  assert.deepEqual(health.body, {
    status: 'unavailable',
    checks: { redis: 'disconnected', rabbitmq: 'ok' },
  });

  // The check fails and goes back to its queue, so the caller gets no reply in time.
  await assert.rejects(call(request('three@member.example'), 1500), { name: 'RpcTimeoutError' });
  const text = await scrapeMetrics(port);
  assert.equal(metricValue(text, 'secondary_mx_redis_up'), 0);
  assert.ok((metricValue(text, 'secondary_mx_redis_errors_total{kind="connection"}') ?? 0) >= 1);
  assert.ok((metricValue(text, 'secondary_mx_redis_errors_total{kind="command"}') ?? 0) >= 1);
});
