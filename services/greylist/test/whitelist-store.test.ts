import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '@secondary-mx/logger';
import { freePort, LOCAL_REDIS_URL, uniqueName } from '@secondary-mx/testkit';
import { Redis } from 'ioredis';
import { closeRedis, connectRedis } from '../src/redis.ts';
import { REFRESH_INTERVAL_MS, WhitelistStore } from '../src/whitelist-store.ts';
import { InvalidWhitelistValueError } from '../src/whitelist-value.ts';

const PREFIX = `${uniqueName('smx_whitelist')}:`;
const logger = createLogger('greylist-test', process.env.TEST_LOG_LEVEL ?? 'silent');
const SETTINGS = { clients: ['192.0.2.0/24'], names: [], senders: ['trusted.example'] };

const redis = new Redis(LOCAL_REDIS_URL);
const stores: WhitelistStore[] = [];

after(async () => {
  for (const store of stores) {
    store.stop();
  }
  const keys = await redis.keys(`${PREFIX}*`);
  if (keys.length > 0) {
    await redis.del(...keys);
  }
  await redis.quit();
});

async function startStore(prefix = PREFIX, client: Redis = redis): Promise<WhitelistStore> {
  const store = new WhitelistStore(client, prefix, SETTINGS, logger);
  stores.push(store);
  await store.start();
  return store;
}

const subject = { clientAddress: '203.0.113.1', sender: 'someone@elsewhere.example' };

test('added entry matches and is listed', async () => {
  const store = await startStore(`${PREFIX}add:`);
  const added = await store.add('client', '203.0.113.9/24', 'partner relay');

  assert.equal(added.ok, true);
  assert.ok(added.ok);
  assert.equal(added.changed, true);
  assert.equal(added.entry.value, '203.0.113.0/24');
  assert.equal(added.entry.note, 'partner relay');
  assert.equal(added.entry.source, 'api');
  assert.ok(Date.parse(added.entry.createdAt ?? '') > Date.now() - 60_000);
  assert.equal(store.matchEntry(subject)?.reason, 'whitelisted-client');
  assert.deepEqual(
    store.entries.map((entry) => [entry.kind, entry.value, entry.source]),
    [
      ['client', '192.0.2.0/24', 'setting'],
      ['sender', '@trusted.example', 'setting'],
      ['client', '203.0.113.0/24', 'api'],
    ],
  );
});

test('adding a listed entry again changes nothing', async () => {
  const store = await startStore(`${PREFIX}again:`);
  const first = await store.add('sender', '@Lists.Example', 'first note');
  const second = await store.add('sender', '@lists.example', 'second note');

  assert.ok(first.ok);
  assert.ok(second.ok);
  assert.equal(second.changed, false);
  assert.equal(second.entry.note, 'first note');
  assert.equal(second.entry.createdAt, first.entry.createdAt);
  assert.equal(store.entries.filter((entry) => entry.source === 'api').length, 1);
});

test('removed entry no longer matches', async () => {
  const store = await startStore(`${PREFIX}remove:`);
  await store.add('name', 'relay.partner.example');
  const named = { ...subject, clientName: 'out.relay.partner.example' };
  assert.equal(store.matchEntry(named)?.reason, 'whitelisted-name');

  const removed = await store.remove('name', '.Relay.Partner.Example');
  assert.ok(removed.ok);
  assert.equal(removed.entry.value, 'relay.partner.example');
  assert.equal(store.matchEntry(named), undefined);

  assert.deepEqual(await store.remove('name', 'relay.partner.example'), {
    ok: false,
    error: 'not-found',
    message: 'name relay.partner.example is not whitelisted',
  });
});

test('settings entry cannot be removed', async () => {
  const store = await startStore(`${PREFIX}setting:`);
  const outcome = await store.remove('client', '192.0.2.0/24');
  assert.equal(outcome.ok, false);
  assert.ok(!outcome.ok);
  assert.equal(outcome.error, 'conflict');
  assert.match(outcome.message, /MX_GREYLIST_WHITELIST_CLIENTS/);
  assert.equal(
    store.matchEntry({ ...subject, clientAddress: '192.0.2.1' })?.reason,
    'whitelisted-client',
  );
});

test('invalid value is rejected before Redis', async () => {
  const store = await startStore(`${PREFIX}invalid:`);
  await assert.rejects(store.add('client', 'not-an-address'), InvalidWhitelistValueError);
  await assert.rejects(store.remove('sender', 'example.com'), InvalidWhitelistValueError);
});

test('other replica applies changes within a refresh', async () => {
  const prefix = `${PREFIX}replicas:`;
  const writer = await startStore(prefix);
  const reader = await startStore(prefix);
  const sender = { ...subject, sender: 'alerts@monitoring.example' };

  await writer.add('sender', 'alerts@monitoring.example');
  assert.equal(await waitForMatch(reader, sender, true), true);
  await writer.remove('sender', 'alerts@monitoring.example');
  assert.equal(await waitForMatch(reader, sender, false), false);
});

/** Polls until the store's match is as expected or two refresh intervals have passed. */
async function waitForMatch(
  store: WhitelistStore,
  matching: typeof subject,
  expected: boolean,
): Promise<boolean> {
  const deadline = Date.now() + 2 * REFRESH_INTERVAL_MS + 500;
  let matched = store.matchEntry(matching) !== undefined;
  while (matched !== expected && Date.now() < deadline) {
    await sleep(50);
    matched = store.matchEntry(matching) !== undefined;
  }
  return matched;
}

test('stored entries that are not valid are skipped', async () => {
  const prefix = `${PREFIX}corrupt:`;
  await redis.hset(`${prefix}greylist-whitelist`, {
    'client 198.51.100.0/24': '{"note":"kept"}',
    'client 198.51.100.7/24': '{}',
    'colour blue': '{}',
    'sender @ok.example': 'not json',
  });
  const store = await startStore(prefix);
  assert.deepEqual(
    store.entries.filter((entry) => entry.source === 'api'),
    [
      { kind: 'client', value: '198.51.100.0/24', note: 'kept', source: 'api' },
      { kind: 'sender', value: '@ok.example', source: 'api' },
    ],
  );
});

test('settings entries apply while Redis is down', async () => {
  const down = connectRedis(`redis://127.0.0.1:${await freePort()}/0`, logger);
  try {
    const store = await startStore(`${PREFIX}down:`, down);
    assert.equal(
      store.matchEntry({ ...subject, clientAddress: '192.0.2.9' })?.reason,
      'whitelisted-client',
    );
    await assert.rejects(store.add('client', '203.0.113.1'));
  } finally {
    await closeRedis(down);
  }
});
