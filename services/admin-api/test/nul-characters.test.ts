import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { findNulCharacter } from '../src/nul-characters.ts';
import {
  AUTH,
  type Harness,
  type RouteRequest,
  registerDomain,
  startHarness,
  testDomain,
} from './support.ts';

let harness: Harness;

before(async () => {
  harness = await startHarness();
});

after(async () => {
  await harness.close();
});

test('findNulCharacter names the nested path', () => {
  assert.equal(findNulCharacter({ note: 'fine' }, 'body'), undefined);
  assert.equal(findNulCharacter({ note: 'a\u0000b' }, 'body'), 'body/note');
  assert.equal(findNulCharacter({ list: ['ok', 'x\u0000'] }, 'body'), 'body/list/1');
  assert.equal(findNulCharacter('\u0000', 'params'), 'params');
  assert.equal(findNulCharacter({ count: 3, flag: true, none: null }, 'body'), undefined);
});

test('NUL in any field is 400 naming it', async () => {
  const domain = await registerDomain(harness.app, testDomain('nul'));
  const cases: [RouteRequest, string][] = [
    [
      {
        method: 'POST',
        url: '/api/domains',
        payload: { domain: testDomain('nul-note'), memberNumber: '7', note: 'a\u0000b' },
      },
      'body/note',
    ],
    [
      { method: 'POST', url: `/api/domains/${domain}/approve`, payload: { reason: '\u0000' } },
      'body/reason',
    ],
    [
      { method: 'POST', url: '/api/tokens', payload: { role: 'admin', note: 'x\u0000' } },
      'body/note',
    ],
    [{ method: 'GET', url: '/api/messages?recipient=a%00b@example.org' }, 'querystring/recipient'],
    [
      {
        method: 'POST',
        url: '/api/messages/actions/retry',
        payload: { sender: 'a\u0000b@example.org' },
      },
      'body/sender',
    ],
    [
      {
        method: 'PUT',
        url: `/api/domains/${domain}/recipients`,
        payload: { recipients: ['alice@', 'b\u0000@'] },
      },
      'body/recipients/1',
    ],
  ];
  for (const [request, field] of cases) {
    const response = await harness.app.inject({ ...request, headers: AUTH });
    const label = `${request.method} ${request.url}`;
    assert.equal(response.statusCode, 400, `${label}: ${response.body}`);
    assert.equal(
      response.json().message,
      `${field} must not contain a NUL character (U+0000)`,
      label,
    );
  }

  const events = await harness.app.inject({
    method: 'GET',
    url: `/api/domains/${domain}/events`,
    headers: AUTH,
  });
  assert.deepEqual(
    events.json().events.map((event: { action: string }) => event.action),
    ['request'],
  );
});
