import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Broker } from '@secondary-mx/amqp';
import { loadSettings } from '@secondary-mx/config';
import {
  GreylistAdminErrorSchema,
  type GreylistCheckReply,
  GreylistCheckReplySchema,
  type GreylistCheckRequest,
  GreylistLookupReplySchema,
  GreylistWhitelistChangeReplySchema,
  GreylistWhitelistListReplySchema,
  QUEUE,
} from '@secondary-mx/contracts';
import { createLogger } from '@secondary-mx/logger';
import {
  LOCAL_AMQP_URL,
  LOCAL_REDIS_URL,
  startDnsServer,
  type TestDnsServer,
  uniqueName,
} from '@secondary-mx/testkit';
import { Redis } from 'ioredis';
import { createGreylistService, type GreylistService } from '../src/service.ts';
import { SETTING_NAMES } from '../src/settings.ts';

const RUN_ID = uniqueName('smx_greylist_service');
const REDIS_PREFIX = `${RUN_ID}:`;
const CALL_TIMEOUT_MS = 5_000;

const GREYLIST_TIMEOUT_MS = 2_000;

const logger = createLogger('greylist-test', process.env.TEST_LOG_LEVEL ?? 'warn');
const dns: TestDnsServer = await startDnsServer({
  'spf.example': { TXT: ['v=spf1 ip4:192.0.2.0/24 ip6:2001:db8:ab::/48 -all'] },
  'nospf.example': { TXT: ['unrelated text'] },
  'plus-all.example': { TXT: ['v=spf1 +all'] },
});
const settings = loadSettings(SETTING_NAMES, {
  AMQP_URL: LOCAL_AMQP_URL,
  REDIS_URL: LOCAL_REDIS_URL,
  DNS_SERVERS: dns.server,
  MX_HOSTNAME: 'mx2.example.net',
  MX_AMQP_PREFIX: `${RUN_ID}.`,
  MX_REDIS_PREFIX: REDIS_PREFIX,
  MX_GREYLIST_DELAY: '1s',
  MX_GREYLIST_RETRY_WINDOW: '10s',
  MX_GREYLIST_MAX_AGE: '60s',
  MX_GREYLIST_TIMEOUT: `${GREYLIST_TIMEOUT_MS}ms`,
  MX_GREYLIST_WHITELIST_CLIENTS: '198.51.100.0/24, 2001:db8:cafe::/48',
  MX_GREYLIST_WHITELIST_NAMES: '.relay.partner.example',
  MX_GREYLIST_WHITELIST_SENDERS: 'trusted.example',
  MX_GREYLIST_METRICS_LISTEN: '',
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
  await dns.close();
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

async function call(body: unknown, timeoutMs = CALL_TIMEOUT_MS): Promise<GreylistCheckReply> {
  const content = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8');
  const reply = await client.call(QUEUE.greylistCheck, content, timeoutMs);
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

test('forward-confirmed pool passes on its second attempt', async () => {
  const first: GreylistCheckRequest = {
    session: 'session-4',
    clientAddress: '40.107.0.89',
    clientName: 'mail-a.outbound.protection.example',
    sender: 'prvs=1234567890=bob@example.net',
    recipient: 'pool@example.org',
  };
  const retry: GreylistCheckRequest = {
    ...first,
    session: 'session-5',
    clientAddress: '40.107.20.64',
    clientName: 'mail-b.outbound.protection.example',
    sender: 'prvs=0987654321=bob@example.net',
  };

  assert.equal((await call(first)).reason, 'new');
  await sleep(1_100);
  assert.deepEqual(await call(retry), { action: 'pass', reason: 'retried', delayed: 1 });
});

test('SPF pass groups the sender domain over RabbitMQ', async () => {
  const first: GreylistCheckRequest = {
    session: 'session-6',
    clientAddress: '192.0.2.10',
    heloName: 'out1.spf.example',
    sender: 'news@spf.example',
    recipient: 'spf@example.org',
  };
  // Both addresses are authorized by spf.example, but share neither network nor name.
  const retry = { ...first, clientAddress: '2001:db8:ab::9', heloName: 'out2.spf.example' };
  const unauthorized = { ...first, clientAddress: '203.0.113.77' };

  assert.equal((await call(first)).reason, 'new');
  assert.equal((await call(unauthorized)).reason, 'new');
  await sleep(1_100);
  assert.equal((await call(retry)).reason, 'retried');
  assert.ok(dns.queryCount('spf.example', 'TXT') > 0, 'no SPF query reached the DNS server');
});

test('sender without SPF groups by network', async () => {
  const first: GreylistCheckRequest = {
    session: 'session-7',
    clientAddress: '192.0.2.11',
    sender: 'news@nospf.example',
    recipient: 'nospf@example.org',
  };
  assert.equal((await call(first)).reason, 'new');
  await sleep(1_100);
  assert.equal((await call({ ...first, clientAddress: '2001:db8:ab::10' })).reason, 'new');
  assert.equal((await call({ ...first, clientAddress: '192.0.2.200' })).reason, 'retried');
});

test('SPF +all groups by network', async () => {
  const first: GreylistCheckRequest = {
    session: 'session-8',
    clientAddress: '127.40.0.1',
    sender: 'news@plus-all.example',
    recipient: 'plus-all@example.org',
  };
  assert.equal((await call(first)).reason, 'new');
  await sleep(1_100);
  assert.equal((await call(first)).reason, 'retried');
  assert.equal((await call({ ...first, clientAddress: '127.41.9.9' })).reason, 'new');
});

test('unanswered SPF lookups leave time for the verdict', async () => {
  dns.setFailure('silent.example', 'no-response');
  const request: GreylistCheckRequest = {
    session: 'session-8',
    clientAddress: '192.0.2.12',
    sender: 'news@silent.example',
    recipient: 'silent@example.org',
  };
  // The SPF check gets half of MX_GREYLIST_TIMEOUT, so the verdict comes within all of it.
  assert.equal((await call(request, GREYLIST_TIMEOUT_MS)).reason, 'new');
});

test('static whitelists pass over RabbitMQ', async () => {
  const base = {
    session: 'session-9',
    clientAddress: '203.0.113.20',
    sender: 'someone@elsewhere.example',
    recipient: 'static@example.org',
  };
  const cases: [request: GreylistCheckRequest, reason: string][] = [
    [{ ...base, clientAddress: '198.51.100.99' }, 'whitelisted-client'],
    [{ ...base, clientAddress: '2001:db8:cafe:1::1' }, 'whitelisted-client'],
    [{ ...base, clientName: 'out.relay.partner.example' }, 'whitelisted-name'],
    [{ ...base, sender: 'alerts@trusted.example' }, 'whitelisted-sender'],
  ];
  for (const [request, reason] of cases) {
    assert.deepEqual(await call(request), { action: 'pass', reason }, reason);
  }
  assert.equal((await call(base)).reason, 'new');
});

async function callAdmin(body: unknown): Promise<Record<string, unknown>> {
  const content = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8');
  const reply = await client.call(QUEUE.greylistAdmin, content, CALL_TIMEOUT_MS);
  return JSON.parse(reply.toString('utf8'));
}

test('admin lookup reports a waiting triplet', async () => {
  const request: GreylistCheckRequest = {
    session: 'session-10',
    clientAddress: '203.0.113.30',
    sender: 'Sender+List@Example.com',
    recipient: 'lookup@example.org',
  };
  const unseen = GreylistLookupReplySchema.parse(
    await callAdmin({ action: 'lookup', ...request, session: undefined }),
  );
  assert.equal(unseen.lookup.state, 'unknown');

  await call(request);
  const { lookup } = GreylistLookupReplySchema.parse(
    await callAdmin({ action: 'lookup', ...request, session: undefined }),
  );
  assert.equal(lookup.state, 'waiting');
  assert.equal(lookup.clientGroup, 'net:203.0.113.0/24');
  assert.equal(lookup.sender, 'sender@example.com');
  assert.equal(lookup.spf, 'none');
  assert.equal(Date.parse(lookup.passAfter ?? '') - Date.parse(lookup.firstSeen ?? ''), 1_000);
  assert.equal(Date.parse(lookup.expiresAt ?? '') - Date.parse(lookup.firstSeen ?? ''), 10_000);
  assert.match(lookup.key, new RegExp(`^${REDIS_PREFIX}gl:[0-9a-f]{64}$`));
});

test('admin lookup names the matching entry', async () => {
  const { lookup } = GreylistLookupReplySchema.parse(
    await callAdmin({
      action: 'lookup',
      clientAddress: '198.51.100.40',
      sender: 'a@elsewhere.example',
      recipient: 'b@example.org',
    }),
  );
  assert.equal(lookup.state, 'whitelisted');
  assert.equal(lookup.reason, 'whitelisted-client');
  assert.deepEqual(lookup.whitelistEntry, {
    kind: 'client',
    value: '198.51.100.0/24',
    source: 'setting',
  });
});

test('admin lookup groups by SPF like a check', async () => {
  const { lookup } = GreylistLookupReplySchema.parse(
    await callAdmin({
      action: 'lookup',
      clientAddress: '192.0.2.10',
      sender: 'news@spf.example',
      recipient: 'spf@example.org',
    }),
  );
  assert.equal(lookup.spf, 'pass');
  assert.equal(lookup.clientGroup, 'spf:spf.example');
  // The check test above retried this triplet from another address of the domain.
  assert.equal(lookup.state, 'passed');
});

test('whitelist entry added over RabbitMQ passes checks', async () => {
  const request: GreylistCheckRequest = {
    session: 'session-11',
    clientAddress: '203.0.113.44',
    sender: 'ops@partner.example',
    recipient: 'added@example.org',
  };
  assert.equal((await call(request)).reason, 'new');

  const added = GreylistWhitelistChangeReplySchema.parse(
    await callAdmin({ action: 'whitelist.add', kind: 'client', value: '203.0.113.44', note: 'n' }),
  );
  assert.deepEqual(
    { ...added.entry, createdAt: undefined },
    { kind: 'client', value: '203.0.113.44/32', note: 'n', source: 'api', createdAt: undefined },
  );
  assert.equal(added.changed, true);
  assert.deepEqual(await call(request), { action: 'pass', reason: 'whitelisted-client' });

  const listed = GreylistWhitelistListReplySchema.parse(
    await callAdmin({ action: 'whitelist.list' }),
  );
  assert.deepEqual(
    listed.entries.map((entry) => `${entry.source} ${entry.kind} ${entry.value}`),
    [
      'setting client 198.51.100.0/24',
      'setting client 2001:db8:cafe::/48',
      'setting name relay.partner.example',
      'setting sender @trusted.example',
      'api client 203.0.113.44/32',
    ],
  );

  const removed = GreylistWhitelistChangeReplySchema.parse(
    await callAdmin({ action: 'whitelist.remove', kind: 'client', value: '203.0.113.44/32' }),
  );
  assert.equal(removed.entry.value, '203.0.113.44/32');
  // The triplet's first attempt was recorded before the entry was added.
  const reason = (await call(request)).reason;
  assert.ok(['too-early', 'retried'].includes(reason), reason);
});

test('admin errors come back as replies', async () => {
  const cases: [unknown, string, RegExp][] = [
    ['not json', 'invalid', /not JSON/],
    [{ action: 'purge' }, 'invalid', /action/],
    [{ action: 'whitelist.add', kind: 'client', value: 'nowhere' }, 'invalid', /"nowhere"/],
    [
      { action: 'lookup', clientAddress: 'nowhere', sender: '', recipient: 'a@example.org' },
      'invalid',
      /not an IP address/,
    ],
    [{ action: 'whitelist.remove', kind: 'sender', value: '@gone.example' }, 'not-found', /@gone/],
    [
      { action: 'whitelist.remove', kind: 'sender', value: '@trusted.example' },
      'conflict',
      /MX_GREYLIST_WHITELIST_SENDERS/,
    ],
  ];
  for (const [body, error, message] of cases) {
    const reply = GreylistAdminErrorSchema.parse(await callAdmin(body));
    assert.equal(reply.error, error, JSON.stringify(body));
    assert.match(reply.message, message, JSON.stringify(body));
  }
});
