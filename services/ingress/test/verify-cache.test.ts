import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { LOCAL_REDIS_URL, uniqueName } from '@secondary-mx/testkit';
import { Redis } from 'ioredis';
import { VerifyCache } from '../src/verify-cache.ts';

const prefix = `${uniqueName('verify')}:`;
let redis: Redis;
let cache: VerifyCache;

before(() => {
  redis = new Redis(LOCAL_REDIS_URL);
  cache = new VerifyCache(redis, prefix, 60_000, 1000);
});

after(async () => {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) {
    await redis.del(...keys);
  }
  await redis.quit();
});

test('verdicts round-trip with the address restored', async () => {
  const key = cache.key('bob@member.example');
  await cache.set(key, 'Bob@member.example', {
    result: 'invalid',
    reply: '550 5.1.1 <Bob@member.example>: No such user',
  });
  const read = await cache.get(key, 'bob@member.example');
  assert.deepEqual(read, {
    result: 'invalid',
    reply: '550 5.1.1 <bob@member.example>: No such user',
  });
  assert.equal(
    await cache.get(cache.key('carol@member.example'), 'carol@member.example'),
    undefined,
  );
});

test('no address is stored in the clear', async () => {
  const address = 'dave@member.example';
  const key = cache.key(address);
  await cache.set(key, address, { result: 'invalid', reply: `550 5.1.1 ${address} unknown` });
  assert.match(key, new RegExp(`^${prefix}verify:[0-9a-f]{64}$`));
  const keys = await redis.keys(`${prefix}*`);
  for (const stored of keys) {
    assert.doesNotMatch(stored, /dave/i);
    assert.doesNotMatch(String(await redis.get(stored)), /dave/i);
  }
});

test('each kind gets its own TTL', async () => {
  const valid = cache.key('erin@member.example');
  const invalid = cache.key('frank@member.example');
  await cache.set(valid, 'erin@member.example', { result: 'valid', reply: '250 2.1.5 Ok' });
  await cache.set(invalid, 'frank@member.example', { result: 'invalid', reply: '550 5.1.1 No' });
  const validTtl = await redis.pttl(valid);
  const invalidTtl = await redis.pttl(invalid);
  assert.ok(validTtl > 1000, `positive TTL ${validTtl} ms`);
  assert.ok(validTtl <= 60_000, `positive TTL ${validTtl} ms`);
  assert.ok(invalidTtl > 0, `negative TTL ${invalidTtl} ms`);
  assert.ok(invalidTtl <= 1000, `negative TTL ${invalidTtl} ms`);
});
