import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '@secondary-mx/logger';
import { freePort } from '@secondary-mx/testkit';
import { createCheckHandler } from '../src/check-handler.ts';
import { Greylist } from '../src/greylist.ts';
import { GreylistPolicy } from '../src/policy.ts';
import { closeRedis, connectRedis } from '../src/redis.ts';
import { StaticWhitelist } from '../src/static-whitelist.ts';

test('check handler throws while Redis is down', async () => {
  const logger = createLogger('greylist-test', 'silent');
  const redis = connectRedis(`redis://127.0.0.1:${await freePort()}/0`, logger);
  try {
    const greylist = new Greylist(redis, {
      keyPrefix: 'unused:',
      delayMs: 1_000,
      retryWindowMs: 3_000,
      maxAgeMs: 5_000,
    });
    const whitelist = new StaticWhitelist({ clients: [], names: [], senders: [] });
    const policy = new GreylistPolicy(greylist, whitelist, async () => ({
      result: 'none',
      groupDomain: undefined,
    }));
    const handler = createCheckHandler(policy, logger, 1_000);
    const request = {
      session: 'session-1',
      clientAddress: '192.0.2.1',
      sender: 'sender@example.com',
      recipient: 'rcpt@example.org',
    };
    await assert.rejects(handler(Buffer.from(JSON.stringify(request))));
  } finally {
    await closeRedis(redis);
  }
});
