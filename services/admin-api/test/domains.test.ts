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

function requestDomain(payload: unknown) {
  return harness.app.inject({
    method: 'POST',
    url: '/api/domains',
    headers: AUTH,
    payload: payload as object,
  });
}

describe('POST /api/domains', () => {
  test('request creates a pending domain', async () => {
    const domain = testDomain('request');
    const response = await requestDomain({ domain, memberNumber: '  M-12/3.4  ' });

    assert.equal(response.statusCode, 201);
    assert.equal(response.headers.location, `/api/domains/${domain}`);
    const body = response.json();
    assert.equal(body.domain, domain);
    assert.equal(body.state, 'pending');
    assert.equal(body.memberNumber, 'M-12/3.4');
    assert.deepEqual(body.primaryHosts, []);
    assert.equal(body.approvedAt, null);
    assert.ok(!Number.isNaN(Date.parse(body.requestedAt)));
    assert.ok(body.requestedAt.endsWith('Z'));
  });

  test('duplicate domain is rejected with 409', async () => {
    const domain = testDomain('duplicate');
    await registerDomain(harness.app, domain);

    const again = await requestDomain({ domain, memberNumber: 'M-2' });
    assert.equal(again.statusCode, 409);
    assert.equal(again.json().error, 'Conflict');
    assert.match(again.json().message, new RegExp(domain));

    const otherCase = await requestDomain({
      domain: `${domain.toUpperCase()}.`,
      memberNumber: 'M-2',
    });
    assert.equal(otherCase.statusCode, 409);
  });

  test('IDN domain is stored as A-label', async () => {
    const label = testDomain('bücher');
    const response = await requestDomain({
      domain: label.replace('bücher', 'Bücher'),
      memberNumber: 'M-3',
    });

    assert.equal(response.statusCode, 201);
    const stored = response.json().domain as string;
    assert.match(stored, /^xn--bcher-[a-z0-9-]+\.example$/);

    const byUnicode = await harness.app.inject({
      method: 'GET',
      url: `/api/domains/${encodeURIComponent(label)}`,
      headers: AUTH,
    });
    assert.equal(byUnicode.statusCode, 200);
    assert.equal(byUnicode.json().domain, stored);
  });

  test('invalid domain is rejected naming domain', async () => {
    for (const domain of [
      'not a domain',
      'localhost',
      '-bad.example',
      '192.0.2.1',
      'a..example',
      '',
    ]) {
      const response = await requestDomain({ domain, memberNumber: 'M-4' });
      assert.equal(response.statusCode, 400, `domain ${JSON.stringify(domain)}`);
      assert.match(response.json().message, /domain/, `domain ${JSON.stringify(domain)}`);
    }

    const missing = await requestDomain({ memberNumber: 'M-4' });
    assert.equal(missing.statusCode, 400);
    assert.match(missing.json().message, /domain/);
  });

  test('invalid member number is rejected naming memberNumber', async () => {
    const cases: unknown[] = ['', '   ', 'M 12', 'M#12', 'x'.repeat(65), 'Mü-1', null, ['M-1']];
    for (const memberNumber of cases) {
      const response = await requestDomain({ domain: testDomain('member'), memberNumber });
      assert.equal(response.statusCode, 400, `memberNumber ${JSON.stringify(memberNumber)}`);
      assert.match(
        response.json().message,
        /memberNumber/,
        `memberNumber ${JSON.stringify(memberNumber)}`,
      );
    }

    const missing = await requestDomain({ domain: testDomain('member') });
    assert.equal(missing.statusCode, 400);
    assert.match(missing.json().message, /memberNumber/);
  });

  test('member number of 64 characters is accepted', async () => {
    const response = await requestDomain({
      domain: testDomain('member'),
      memberNumber: 'a'.repeat(64),
    });
    assert.equal(response.statusCode, 201);
  });

  test('malformed JSON body is rejected with 400', async () => {
    const response = await harness.app.inject({
      method: 'POST',
      url: '/api/domains',
      headers: { ...AUTH, 'content-type': 'application/json' },
      payload: '{"domain": ',
    });
    assert.equal(response.statusCode, 400);
    assert.equal(response.json().error, 'Bad Request');
  });
});

describe('POST /api/domains/:domain/approve', () => {
  test('approve sets approved and publishes domains.changed', async () => {
    const domain = await registerDomain(harness.app, testDomain('approve'));

    const response = await harness.app.inject({
      method: 'POST',
      url: `/api/domains/${domain}/approve`,
      headers: AUTH,
    });

    assert.equal(response.statusCode, 200);
    assert.equal(response.json().domain.state, 'approved');
    assert.ok(!Number.isNaN(Date.parse(response.json().domain.approvedAt)));
    const event = await recorder.waitFor(
      (e) => e.type === 'domains.changed' && e.domain === domain,
    );
    assert.deepEqual(event, { type: 'domains.changed', domain });
  });

  test('approve accepts an empty JSON body', async () => {
    const domain = await registerDomain(harness.app, testDomain('empty-body'));
    const response = await harness.app.inject({
      method: 'POST',
      url: `/api/domains/${domain}/approve`,
      headers: { ...AUTH, 'content-type': 'application/json' },
    });
    assert.equal(response.statusCode, 200);
  });

  test('approve of unknown domain is 404', async () => {
    const response = await harness.app.inject({
      method: 'POST',
      url: `/api/domains/${testDomain('unknown')}/approve`,
      headers: AUTH,
    });
    assert.equal(response.statusCode, 404);
    assert.equal(response.json().error, 'Not Found');
  });

  test('approve of invalid domain is 400', async () => {
    const response = await harness.app.inject({
      method: 'POST',
      url: '/api/domains/not_a_domain/approve',
      headers: AUTH,
    });
    assert.equal(response.statusCode, 400);
    assert.match(response.json().message, /domain/);
  });
});

describe('GET /api/domains', () => {
  test('get normalizes the domain parameter', async () => {
    const domain = await registerDomain(harness.app, testDomain('lookup'));
    const response = await harness.app.inject({
      method: 'GET',
      url: `/api/domains/${domain.toUpperCase()}`,
      headers: AUTH,
    });
    assert.equal(response.statusCode, 200);
    assert.equal(response.json().domain, domain);
  });

  test('get of unknown domain is 404', async () => {
    const response = await harness.app.inject({
      method: 'GET',
      url: `/api/domains/${testDomain('unknown')}`,
      headers: AUTH,
    });
    assert.equal(response.statusCode, 404);
    assert.match(response.json().message, /not registered/);
  });

  test('list filters by state', async () => {
    const pending = await registerDomain(harness.app, testDomain('list-pending'));
    const approved = await registerDomain(harness.app, testDomain('list-approved'));
    await harness.app.inject({
      method: 'POST',
      url: `/api/domains/${approved}/approve`,
      headers: AUTH,
    });

    const all = await harness.app.inject({ method: 'GET', url: '/api/domains', headers: AUTH });
    const allNames = all.json().domains.map((d: { domain: string }) => d.domain);
    assert.ok(allNames.includes(pending));
    assert.ok(allNames.includes(approved));

    const onlyApproved = await harness.app.inject({
      method: 'GET',
      url: '/api/domains?state=approved',
      headers: AUTH,
    });
    const approvedStates = onlyApproved.json().domains.map((d: { state: string }) => d.state);
    const approvedNames = onlyApproved.json().domains.map((d: { domain: string }) => d.domain);
    assert.ok(approvedStates.every((state: string) => state === 'approved'));
    assert.ok(approvedNames.includes(approved));
    assert.ok(!approvedNames.includes(pending));
  });

  test('list with unknown state is 400 naming state', async () => {
    const response = await harness.app.inject({
      method: 'GET',
      url: '/api/domains?state=bogus',
      headers: AUTH,
    });
    assert.equal(response.statusCode, 400);
    assert.match(response.json().message, /state/);
  });
});

describe('PATCH /api/domains/:domain', () => {
  function patch(domain: string, payload: unknown) {
    return harness.app.inject({
      method: 'PATCH',
      url: `/api/domains/${domain}`,
      headers: AUTH,
      payload: payload as object,
    });
  }

  test('patch sets and clears primaryHosts', async () => {
    const domain = await registerDomain(harness.app, testDomain('patch'));

    const set = await patch(domain, {
      primaryHosts: ['MX1.Example.NET.', '127.0.0.1:2525', '[::1]:2526', 'mx.bücher.example'],
    });
    assert.equal(set.statusCode, 200);
    assert.deepEqual(set.json().primaryHosts, [
      'mx1.example.net',
      '127.0.0.1:2525',
      '[::1]:2526',
      'mx.xn--bcher-kva.example',
    ]);
    await recorder.waitFor((e) => e.type === 'domains.changed' && e.domain === domain);

    const fetched = await harness.app.inject({
      method: 'GET',
      url: `/api/domains/${domain}`,
      headers: AUTH,
    });
    assert.deepEqual(fetched.json().primaryHosts, set.json().primaryHosts);

    const cleared = await patch(domain, { primaryHosts: [] });
    assert.equal(cleared.statusCode, 200);
    assert.deepEqual(cleared.json().primaryHosts, []);
  });

  test('patch rejects invalid entries naming the entry', async () => {
    const domain = await registerDomain(harness.app, testDomain('patch-invalid'));
    const invalid = [
      'mx..example.net',
      '256.1.1.1',
      '::1',
      '[::1',
      '[192.0.2.1]:25',
      'mx.example.net:0',
      'mx.example.net:65536',
      'mx.example.net:smtp',
      'mx.example.net:25:26',
      '-mx.example.net',
      ' ',
    ];
    for (const entry of invalid) {
      const response = await patch(domain, { primaryHosts: ['mx.example.net', entry] });
      assert.equal(response.statusCode, 400, `entry ${JSON.stringify(entry)}`);
      assert.match(response.json().message, /primaryHosts\[1\]/, `entry ${JSON.stringify(entry)}`);
    }

    const repeated = await patch(domain, { primaryHosts: ['mx.example.net', 'MX.example.net'] });
    assert.equal(repeated.statusCode, 400);
    assert.match(repeated.json().message, /primaryHosts\[1\].*twice/);

    const unchanged = await harness.app.inject({
      method: 'GET',
      url: `/api/domains/${domain}`,
      headers: AUTH,
    });
    assert.deepEqual(unchanged.json().primaryHosts, []);
  });

  test('patch rejects more than ten entries', async () => {
    const domain = await registerDomain(harness.app, testDomain('patch-many'));
    const hosts = Array.from({ length: 11 }, (_, i) => `mx${i}.example.net`);
    const response = await patch(domain, { primaryHosts: hosts });
    assert.equal(response.statusCode, 400);
    assert.match(response.json().message, /primaryHosts/);

    const ten = await patch(domain, { primaryHosts: hosts.slice(0, 10) });
    assert.equal(ten.statusCode, 200);
  });

  test('patch without primaryHosts list is 400', async () => {
    const domain = await registerDomain(harness.app, testDomain('patch-missing'));
    for (const payload of [{}, { primaryHosts: 'mx.example.net' }, { primaryHosts: [25] }]) {
      const response = await patch(domain, payload);
      assert.equal(response.statusCode, 400, JSON.stringify(payload));
      assert.match(response.json().message, /primaryHosts/, JSON.stringify(payload));
    }
  });

  test('patch of unknown domain is 404', async () => {
    const response = await patch(testDomain('unknown'), { primaryHosts: [] });
    assert.equal(response.statusCode, 404);
  });
});
