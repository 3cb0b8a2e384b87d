import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  AUTH,
  type EventRecorder,
  type Harness,
  recordControlEvents,
  registerDomain,
  startHarness,
  testDomain,
} from './support.ts';

let harness: Harness;
let recorder: EventRecorder;

before(async () => {
  harness = await startHarness();
  recorder = await recordControlEvents(harness.amqpPrefix);
});

after(async () => {
  await recorder.stop();
  await harness.close();
});

function call(method: 'GET' | 'PUT' | 'POST' | 'DELETE' | 'PATCH', url: string, payload?: unknown) {
  return harness.app.inject({
    method,
    url,
    headers: AUTH,
    ...(payload === undefined ? {} : { payload: payload as object }),
  });
}

function eventCount(domain: string): number {
  return recorder.events.filter(
    (event) => event.type === 'domains.changed' && event.domain === domain,
  ).length;
}

describe('PATCH /api/domains/:domain policy', () => {
  test('new domain shows the defaults', async () => {
    const domain = await registerDomain(harness.app, testDomain('defaults'));
    const response = await call('GET', `/api/domains/${domain}`);
    assert.equal(response.statusCode, 200);
    assert.equal(response.json().recipientCheck, 'none');
    assert.equal(response.json().localPartCaseSensitive, false);
    assert.equal(response.json().greylist, true);
  });

  test('patch sets each field and keeps the others', async () => {
    const domain = await registerDomain(harness.app, testDomain('policy'));
    await call('PATCH', `/api/domains/${domain}`, { primaryHosts: ['mx.example.net:2525'] });

    const verify = await call('PATCH', `/api/domains/${domain}`, { recipientCheck: 'verify' });
    assert.equal(verify.statusCode, 200, verify.body);
    assert.equal(verify.json().recipientCheck, 'verify');
    assert.deepEqual(verify.json().primaryHosts, ['mx.example.net:2525']);
    assert.equal(verify.json().greylist, true);

    const greylist = await call('PATCH', `/api/domains/${domain}`, {
      greylist: false,
      localPartCaseSensitive: true,
    });
    assert.equal(greylist.statusCode, 200, greylist.body);
    const shown = (await call('GET', `/api/domains/${domain}`)).json();
    assert.equal(shown.recipientCheck, 'verify');
    assert.equal(shown.greylist, false);
    assert.equal(shown.localPartCaseSensitive, true);
    assert.deepEqual(shown.primaryHosts, ['mx.example.net:2525']);

    await recorder.waitFor(
      (event) => 'domain' in event && event.domain === domain && eventCount(domain) >= 3,
    );
  });

  test('invalid fields are rejected naming the field', async () => {
    const domain = await registerDomain(harness.app, testDomain('policy-invalid'));
    const cases: [unknown, RegExp][] = [
      [{ recipientCheck: 'maybe' }, /recipientCheck/],
      [{ recipientCheck: 1 }, /recipientCheck/],
      [{ greylist: 'sometimes' }, /greylist/],
      [{ localPartCaseSensitive: [] }, /localPartCaseSensitive/],
      [{ greylisting: false }, /body\/greylisting is not a domain setting/],
      [{}, /at least one of primaryHosts, recipientCheck, localPartCaseSensitive, greylist/],
    ];
    for (const [payload, message] of cases) {
      const response = await call('PATCH', `/api/domains/${domain}`, payload);
      assert.equal(response.statusCode, 400, JSON.stringify(payload));
      assert.match(response.json().message, message, JSON.stringify(payload));
    }
    const shown = (await call('GET', `/api/domains/${domain}`)).json();
    assert.equal(shown.recipientCheck, 'none');
    assert.equal(shown.greylist, true);
  });
});

describe('recipient list routes', () => {
  test('put replaces the list and normalizes entries', async () => {
    const domain = await registerDomain(harness.app, testDomain('list'));
    const empty = await call('GET', `/api/domains/${domain}/recipients`);
    assert.equal(empty.statusCode, 200);
    assert.deepEqual(empty.json(), { domain, recipients: [] });

    const put = await call('PUT', `/api/domains/${domain}/recipients`, {
      recipients: [`alice@${domain.toUpperCase()}`, 'sales-*@', ' *@ ', 'alice@', 'Bob@'],
    });
    assert.equal(put.statusCode, 200, put.body);
    assert.deepEqual(put.json().recipients, [
      `*@${domain}`,
      `Bob@${domain}`,
      `alice@${domain}`,
      `sales-*@${domain}`,
    ]);

    const replaced = await call('PUT', `/api/domains/${domain}/recipients`, {
      recipients: ['carol@'],
    });
    assert.deepEqual(replaced.json().recipients, [`carol@${domain}`]);
    const shown = await call('GET', `/api/domains/${domain}/recipients`);
    assert.deepEqual(shown.json().recipients, [`carol@${domain}`]);
    await recorder.waitFor(
      (event) => 'domain' in event && event.domain === domain && eventCount(domain) >= 2,
    );
  });

  test('post adds and delete removes one entry', async () => {
    const domain = await registerDomain(harness.app, testDomain('entries'));
    const added = await call('POST', `/api/domains/${domain}/recipients`, {
      recipient: 'info-*@',
    });
    assert.equal(added.statusCode, 201, added.body);
    assert.deepEqual(added.json().recipients, [`info-*@${domain}`]);

    const repeated = await call('POST', `/api/domains/${domain}/recipients`, {
      recipient: `info-*@${domain}`,
    });
    assert.equal(repeated.statusCode, 200, repeated.body);
    assert.deepEqual(repeated.json().recipients, [`info-*@${domain}`]);

    const url = `/api/domains/${domain}/recipients/${encodeURIComponent('info-*@')}`;
    const removed = await call('DELETE', url);
    assert.equal(removed.statusCode, 200, removed.body);
    assert.deepEqual(removed.json().recipients, []);

    const missing = await call('DELETE', url);
    assert.equal(missing.statusCode, 404);
    assert.match(missing.json().message, /info-\*@.* is not in the recipient list/);
  });

  test('invalid entries are rejected naming the entry', async () => {
    const domain = await registerDomain(harness.app, testDomain('list-invalid'));
    const cases: [string, RegExp][] = [
      ['alice', /recipients\[1\] "alice" has no @/],
      ['alice@other.example', /recipients\[1\] "alice@other.example" is not an address of/],
      [`@${domain}`, /recipients\[1\] "@.*" has an empty local part/],
      ['.alice@', /recipients\[1\] ".alice@" has an invalid local part/],
      ['al..ice@', /has an invalid local part/],
      ['a%b@', /has an invalid local part/],
      ['a!b@', /has an invalid local part/],
      ['a b@', /has an invalid local part/],
      ['"quoted"@', /quoted local part/],
      [`${'a'.repeat(65)}@`, /longer than 64 octets/],
    ];
    for (const [entry, message] of cases) {
      const response = await call('PUT', `/api/domains/${domain}/recipients`, {
        recipients: ['valid@', entry],
      });
      assert.equal(response.statusCode, 400, entry);
      assert.match(response.json().message, message, entry);
    }
    const post = await call('POST', `/api/domains/${domain}/recipients`, { recipient: 'xy' });
    assert.equal(post.statusCode, 400);
    assert.match(post.json().message, /^recipient "xy" has no @/);
    const shown = await call('GET', `/api/domains/${domain}/recipients`);
    assert.deepEqual(shown.json().recipients, []);
  });

  test('schema violations are rejected naming the field', async () => {
    const domain = await registerDomain(harness.app, testDomain('list-schema'));
    const cases: ['PUT' | 'POST', unknown, RegExp][] = [
      ['PUT', {}, /recipients/],
      ['PUT', { recipients: 'alice@' }, /recipients/],
      ['PUT', { recipients: [{}] }, /recipients\/0 must be string/],
      ['PUT', { recipients: ['@'] }, /recipients\/0 must NOT have fewer than 2 characters/],
      ['PUT', { recipients: Array.from({ length: 10_001 }, (_, i) => `u${i}@`) }, /recipients/],
      ['POST', {}, /recipient/],
      ['POST', { recipient: '' }, /recipient/],
    ];
    for (const [method, payload, message] of cases) {
      const response = await call(method, `/api/domains/${domain}/recipients`, payload);
      assert.equal(response.statusCode, 400, `${method} ${JSON.stringify(payload).slice(0, 60)}`);
      assert.match(response.json().message, message);
    }
  });

  test('unknown domain is 404 on every list route', async () => {
    const domain = testDomain('unknown-list');
    const responses = [
      await call('GET', `/api/domains/${domain}/recipients`),
      await call('PUT', `/api/domains/${domain}/recipients`, { recipients: [] }),
      await call('POST', `/api/domains/${domain}/recipients`, { recipient: 'a@' }),
      await call('DELETE', `/api/domains/${domain}/recipients/a@`),
    ];
    for (const response of responses) {
      assert.equal(response.statusCode, 404, response.body);
      assert.match(response.json().message, /is not registered/);
    }
  });

  test('routes require the bearer token', async () => {
    const domain = await registerDomain(harness.app, testDomain('list-auth'));
    const routes: ['GET' | 'PUT' | 'POST' | 'DELETE', string, object | undefined][] = [
      ['GET', `/api/domains/${domain}/recipients`, undefined],
      ['PUT', `/api/domains/${domain}/recipients`, { recipients: ['a@'] }],
      ['POST', `/api/domains/${domain}/recipients`, { recipient: 'a@' }],
      ['DELETE', `/api/domains/${domain}/recipients/a@`, undefined],
    ];
    for (const [method, url, payload] of routes) {
      const response = await harness.app.inject({ method, url, payload });
      assert.equal(response.statusCode, 401, `${method} ${url}`);
    }
    const shown = await call('GET', `/api/domains/${domain}/recipients`);
    assert.deepEqual(shown.json().recipients, []);
  });

  test('openapi documents the list routes', async () => {
    const response = await harness.app.inject({ method: 'GET', url: '/docs/json' });
    const paths = response.json().paths;
    const list = paths['/api/domains/{domain}/recipients'];
    assert.ok(list?.get, Object.keys(paths).join(', '));
    assert.ok(list.put);
    assert.ok(list.post);
    assert.ok(paths['/api/domains/{domain}/recipients/{recipient}']?.delete);
    const patch = paths['/api/domains/{domain}'].patch;
    const schema = patch.requestBody.content['application/json'].schema;
    assert.deepEqual(schema.properties.recipientCheck.enum, ['none', 'list', 'verify']);
  });
});
