import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Broker } from '@secondary-mx/amqp';
import { loadSettings } from '@secondary-mx/config';
import {
  type GreylistCheckReply,
  GreylistCheckReplySchema,
  type GreylistCheckRequest,
  QUEUE,
} from '@secondary-mx/contracts';
import { createLogger } from '@secondary-mx/logger';
import { LOCAL_AMQP_URL, LOCAL_REDIS_URL, uniqueName } from '@secondary-mx/testkit';
import { Redis } from 'ioredis';
import { createGreylistService, type GreylistService } from '../src/service.ts';
import { SETTING_NAMES } from '../src/settings.ts';

const RUN_ID = uniqueName('smx_greylist_service');
const REDIS_PREFIX = `${RUN_ID}:`;
const CALL_TIMEOUT_MS = 5_000;

const logger = createLogger('greylist-test', process.env.TEST_LOG_LEVEL ?? 'warn');
const settings = loadSettings(SETTING_NAMES, {
  AMQP_URL: LOCAL_AMQP_URL,
  REDIS_URL: LOCAL_REDIS_URL,
  MX_AMQP_PREFIX: `${RUN_ID}.`,
  MX_REDIS_PREFIX: REDIS_PREFIX,
  MX_GREYLIST_DELAY: '1s',
  MX_GREYLIST_RETRY_WINDOW: '10s',
  MX_GREYLIST_MAX_AGE: '60s',
});

let service: GreylistService;
const client = new Broker({
  url: LOCAL_AMQP_URL,
  prefix: settings.MX_AMQP_PREFIX,
  logger,
  connectionName: 'greylist-test-client',
});

before(async () => {
  service = createGreylistService(settings, logger);
  await service.start();
  await client.start();
});

after(async () => {
  await client.stop();
  await service.stop();
  await deleteTestKeys();
});

async function deleteTestKeys(): Promise<void> {
  const redis = new Redis(LOCAL_REDIS_URL);
  const keys = await redis.keys(`${REDIS_PREFIX}*`);
  if (keys.length > 0) {
    await redis.del(...keys);
  }
  await redis.quit();
}

async function call(body: unknown): Promise<GreylistCheckReply> {
  const content = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8');
  const reply = await client.call(QUEUE.greylistCheck, content, CALL_TIMEOUT_MS);
  return GreylistCheckReplySchema.parse(JSON.parse(reply.toString('utf8')));
}

test('check over RabbitMQ defers then passes', async () => {
  const request: GreylistCheckRequest = {
    session: 'session-1',
    clientAddress: '203.0.113.5',
    sender: 'sender@example.com',
    recipient: 'rcpt@example.org',
  };

  assert.deepEqual(await call(request), { action: 'defer', reason: 'new', retryAfter: 1 });
  await sleep(1_100);
  assert.deepEqual(await call(request), { action: 'pass', reason: 'retried', delayed: 1 });
  assert.deepEqual(await call(request), { action: 'pass', reason: 'whitelisted' });
});

test('invalid request over RabbitMQ is deferred', async () => {
  const invalid = { action: 'defer', reason: 'invalid-request', retryAfter: 1 };

  assert.deepEqual(await call('not json'), invalid);
  assert.deepEqual(await call({ session: 'session-2', clientAddress: '203.0.113.5' }), invalid);
  const notAnAddress = {
    session: 'session-3',
    clientAddress: 'unknown',
    sender: '',
    recipient: 'rcpt@example.org',
  };
  assert.deepEqual(await call(notAnAddress), invalid);
});

test('delay as long as the window is rejected', () => {
  const invalid = { ...settings, MX_GREYLIST_DELAY: 10_000, MX_GREYLIST_RETRY_WINDOW: 10_000 };
  assert.throws(() => createGreylistService(invalid, logger), RangeError);
});
