import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { QUEUE } from '@secondary-mx/contracts';
import { startDnsServer, type TestDnsServer } from '@secondary-mx/testkit';
import { startTestGreylist, type TestGreylist } from './greylist-service.ts';
import {
  AUTH,
  assertAccess,
  type Callers,
  createCallers,
  type Harness,
  registerDomain,
  startHarness,
  testDomain,
} from './support.ts';

let harness: Harness;
let greylist: TestGreylist;
let dns: TestDnsServer;
let callers: Callers;

before(async () => {
  harness = await startHarness();
  dns = await startDnsServer({});
  greylist = await startTestGreylist(harness.amqpPrefix, {
    DNS_SERVERS: dns.server,
    MX_GREYLIST_WHITELIST_CLIENTS: '198.51.100.0/24',
    MX_GREYLIST_WHITELIST_SENDERS: 'trusted.example',
  });
  const domain = await registerDomain(harness.app, testDomain('greylist'));
  const otherDomain = await registerDomain(harness.app, testDomain('greylist-other'));
  callers = await createCallers(harness.app, domain, otherDomain);
});

after(async () => {
  await greylist.stop();
  await harness.close();
  await dns.close();
});

/** Records one greylist check of the triplet, as ingress would on RCPT. */
async function checkTriplet(clientAddress: string, sender: string, recipient: string) {
  const request = { session: 'test', clientAddress, sender, recipient };
  const reply = await harness.broker.call(
    QUEUE.greylistCheck,
    Buffer.from(JSON.stringify(request)),
    5_000,
  );
  return JSON.parse(reply.toString('utf8'));
}

function lookupUrl(client: string, sender: string, recipient: string): string {
  const query = new URLSearchParams({ client, sender, recipient });
  return `/api/greylist/triplets?${query}`;
}

describe('greylist routes access', () => {
  test('greylist routes are admin only', async () => {
    const expected = { admin: 200, member: 403, otherMember: 403 };
    await assertAccess(
      harness.app,
      { method: 'GET', url: lookupUrl('203.0.113.1', 'a@example.com', 'b@example.org') },
      expected,
      callers,
    );
    await assertAccess(
      harness.app,
      { method: 'GET', url: '/api/greylist/whitelist' },
      expected,
      callers,
    );
    await assertAccess(
      harness.app,
      {
        method: 'POST',
        url: '/api/greylist/whitelist',
        payload: { kind: 'name', value: 'access.example' },
      },
      { ...expected, admin: 201 },
      callers,
    );
    await assertAccess(
      harness.app,
      { method: 'DELETE', url: '/api/greylist/whitelist/name/access.example' },
      expected,
      callers,
    );
  });
});

describe('GET /api/greylist/triplets', () => {
  test('lookup shows a waiting triplet', async () => {
    const verdict = await checkTriplet('203.0.113.5', 'Bob+news@Example.com', 'rcpt@example.org');
    assert.equal(verdict.reason, 'new');

    const response = await harness.app.inject({
      method: 'GET',
      url: lookupUrl('203.0.113.77', '<bob@example.com>', 'RCPT@example.org'),
      headers: AUTH,
    });
    assert.equal(response.statusCode, 200, response.body);
    const body = response.json();
    assert.equal(body.state, 'waiting');
    assert.equal(body.clientGroup, 'net:203.0.113.0/24');
    assert.equal(body.sender, 'bob@example.com');
    assert.equal(body.recipient, 'rcpt@example.org');
    assert.equal(body.spf, 'none');
    assert.equal(Date.parse(body.passAfter) - Date.parse(body.firstSeen), 1_000);
    assert.equal(Date.parse(body.expiresAt) - Date.parse(body.firstSeen), 60_000);
    assert.match(body.key, new RegExp(`^${greylist.redisPrefix}gl:[0-9a-f]{64}$`));
    assert.equal(body.groupPasses, 0);
    assert.equal(body.autoWhitelistAfter, 5);
  });

  test('lookup of an unseen null sender is unknown', async () => {
    const response = await harness.app.inject({
      method: 'GET',
      url: lookupUrl('2001:db8::5', '<>', 'postmaster@example.org'),
      headers: AUTH,
    });
    assert.equal(response.statusCode, 200, response.body);
    const body = response.json();
    assert.equal(body.state, 'unknown');
    assert.equal(body.sender, '');
    assert.equal(body.clientGroup, 'net:2001:db8::/64');
    assert.equal(body.firstSeen, undefined);
  });

  test('lookup names the whitelist entry', async () => {
    const response = await harness.app.inject({
      method: 'GET',
      url: lookupUrl('203.0.113.9', 'alerts@lists.trusted.example', 'a@example.org'),
      headers: AUTH,
    });
    const body = response.json();
    assert.equal(body.state, 'whitelisted');
    assert.equal(body.reason, 'whitelisted-sender');
    assert.deepEqual(body.whitelistEntry, {
      kind: 'sender',
      value: '@trusted.example',
      source: 'setting',
    });
  });

  test('lookup of an invalid client is 400', async () => {
    const response = await harness.app.inject({
      method: 'GET',
      url: lookupUrl('mail.example', 'a@example.com', 'b@example.org'),
      headers: AUTH,
    });
    assert.equal(response.statusCode, 400);
    assert.match(response.json().message, /"mail\.example" is not an IP address/);
  });

  test('lookup without a recipient is 400', async () => {
    const response = await harness.app.inject({
      method: 'GET',
      url: '/api/greylist/triplets?client=192.0.2.1&sender=',
      headers: AUTH,
    });
    assert.equal(response.statusCode, 400);
    assert.match(response.json().message, /recipient/);
  });
});

describe('greylist whitelist routes', () => {
  test('whitelist lists settings entries', async () => {
    const response = await harness.app.inject({
      method: 'GET',
      url: '/api/greylist/whitelist',
      headers: AUTH,
    });
    assert.equal(response.statusCode, 200);
    const settings = response
      .json()
      .entries.filter((entry: { source: string }) => entry.source === 'setting');
    assert.deepEqual(settings, [
      { kind: 'client', value: '198.51.100.0/24', note: null, createdAt: null, source: 'setting' },
      { kind: 'sender', value: '@trusted.example', note: null, createdAt: null, source: 'setting' },
    ]);
  });

  test('added entry passes checks until removed', async () => {
    const client = '192.0.2.66';
    assert.equal((await checkTriplet(client, 'a@partner.example', 'x@example.org')).reason, 'new');

    const added = await harness.app.inject({
      method: 'POST',
      url: '/api/greylist/whitelist',
      headers: AUTH,
      payload: { kind: 'client', value: '192.0.2.64/26', note: 'partner relays' },
    });
    assert.equal(added.statusCode, 201, added.body);
    const entry = added.json();
    assert.equal(entry.value, '192.0.2.64/26');
    assert.equal(entry.note, 'partner relays');
    assert.equal(entry.source, 'api');
    assert.ok(Date.parse(entry.createdAt) > Date.now() - 60_000, entry.createdAt);
    const passed = await checkTriplet(client, 'a@partner.example', 'x@example.org');
    assert.deepEqual(passed, { action: 'pass', reason: 'whitelisted-client' });

    const again = await harness.app.inject({
      method: 'POST',
      url: '/api/greylist/whitelist',
      headers: AUTH,
      payload: { kind: 'client', value: '192.0.2.100/26' },
    });
    assert.equal(again.statusCode, 200);
    assert.deepEqual(again.json(), entry);

    const listed = await harness.app.inject({
      method: 'GET',
      url: '/api/greylist/whitelist',
      headers: AUTH,
    });
    assert.deepEqual(listed.json().entries.at(-1), entry);

    // The slash of the network may come unencoded.
    const removed = await harness.app.inject({
      method: 'DELETE',
      url: '/api/greylist/whitelist/client/192.0.2.64/26',
      headers: AUTH,
    });
    assert.equal(removed.statusCode, 200, removed.body);
    assert.deepEqual(removed.json(), entry);
    const deferred = await checkTriplet(client, 'a@partner.example', 'x@example.org');
    assert.equal(deferred.action, 'defer');
  });

  test('encoded value is removed', async () => {
    const added = await harness.app.inject({
      method: 'POST',
      url: '/api/greylist/whitelist',
      headers: AUTH,
      payload: { kind: 'sender', value: 'News@Shop.Example' },
    });
    assert.equal(added.statusCode, 201);
    assert.equal(added.json().value, 'news@shop.example');
    assert.equal(added.json().note, null);

    const removed = await harness.app.inject({
      method: 'DELETE',
      url: `/api/greylist/whitelist/sender/${encodeURIComponent('news@shop.example')}`,
      headers: AUTH,
    });
    assert.equal(removed.statusCode, 200, removed.body);

    const network = await harness.app.inject({
      method: 'POST',
      url: '/api/greylist/whitelist',
      headers: AUTH,
      payload: { kind: 'client', value: '2001:db8:77::/48' },
    });
    assert.equal(network.statusCode, 201);
    const encoded = await harness.app.inject({
      method: 'DELETE',
      url: `/api/greylist/whitelist/client/${encodeURIComponent('2001:db8:77::/48')}`,
      headers: AUTH,
    });
    assert.equal(encoded.statusCode, 200, encoded.body);
  });

  test('whitelist errors have their status', async () => {
    const cases: [
      method: 'POST' | 'DELETE',
      url: string,
      payload: object | undefined,
      status: number,
      message: RegExp,
    ][] = [
      [
        'POST',
        '/api/greylist/whitelist',
        { kind: 'client', value: 'somewhere' },
        400,
        /"somewhere"/,
      ],
      ['POST', '/api/greylist/whitelist', { kind: 'colour', value: 'blue' }, 400, /kind/],
      ['POST', '/api/greylist/whitelist', { kind: 'name' }, 400, /value/],
      ['DELETE', '/api/greylist/whitelist/name/gone.example', undefined, 404, /not whitelisted/],
      ['DELETE', '/api/greylist/whitelist/colour/blue', undefined, 400, /kind/],
      [
        'DELETE',
        '/api/greylist/whitelist/client/198.51.100.0/24',
        undefined,
        409,
        /MX_GREYLIST_WHITELIST_CLIENTS/,
      ],
    ];
    for (const [method, url, payload, status, message] of cases) {
      const response = await harness.app.inject({ method, url, payload, headers: AUTH });
      assert.equal(response.statusCode, status, `${method} ${url}: ${response.body}`);
      assert.match(response.json().message, message, `${method} ${url}`);
    }
  });
});

describe('greylist service not running', () => {
  let lonely: Harness;

  before(async () => {
    lonely = await startHarness();
  });

  after(async () => {
    await lonely.close();
  });

  test('greylist routes answer 503', async () => {
    for (const url of ['/api/greylist/whitelist', lookupUrl('192.0.2.1', '', 'a@example.org')]) {
      const response = await lonely.app.inject({ method: 'GET', url, headers: AUTH });
      assert.equal(response.statusCode, 503, url);
      assert.equal(
        response.json().message,
        'no greylist service is running: start one and try again',
        url,
      );
    }
  });
});
