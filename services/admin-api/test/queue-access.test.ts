/** Access to the queue routes: administrators everywhere, member tokens on their own domain. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  AUTH,
  assertAccess,
  type Callers,
  createCallers,
  type Harness,
  registerDomain,
  startHarness,
  storeMessage,
  testDomain,
} from './support.ts';

let harness: Harness;
let domain: string;
let otherDomain: string;
let callers: Callers;

before(async () => {
  harness = await startHarness();
  domain = await registerDomain(harness.app, testDomain('access'));
  otherDomain = await registerDomain(harness.app, testDomain('access-other'));
  callers = await createCallers(harness.app, domain, otherDomain);
});

after(async () => {
  await harness.close();
});

async function states(queueId: string): Promise<Record<string, string>> {
  const result = await harness.pool.query<{ address: string; state: string }>(
    'SELECT address, state FROM recipients WHERE message_id = $1',
    [queueId],
  );
  return Object.fromEntries(result.rows.map((row) => [row.address, row.state]));
}

describe('queue routes access', () => {
  test('each route by caller', async () => {
    // The recipient of a third domain keeps the message after the member deletes its own.
    const id = await storeMessage(harness.pool, [`alice@${domain}`, `zed@${testDomain('third')}`]);
    const expectations: [
      { method: 'GET' | 'POST'; url: string; payload?: object },
      { admin: number; member: number; otherMember: number },
    ][] = [
      [{ method: 'GET', url: `/api/messages?domain=${domain}` }, statuses(200, 200, 200)],
      [{ method: 'GET', url: `/api/messages/${id}` }, statuses(200, 200, 404)],
      [{ method: 'GET', url: `/api/messages/${id}/raw` }, statuses(200, 403, 403)],
      [{ method: 'GET', url: '/api/stats' }, statuses(200, 200, 200)],
      [
        { method: 'POST', url: '/api/messages/actions/hold', payload: { domain } },
        statuses(200, 200, 200),
      ],
      [
        { method: 'POST', url: '/api/messages/actions/release', payload: { all: true } },
        statuses(200, 403, 403),
      ],
    ];
    for (const action of ['retry', 'hold', 'release', 'bounce', 'delete']) {
      expectations.push([
        { method: 'POST', url: `/api/messages/${id}/${action}` },
        statuses(200, 200, 404),
      ]);
    }
    for (const [request, expected] of expectations) {
      await assertAccess(harness.app, request, expected, callers);
    }
  });

  test('member lists and shows its own recipients only', async () => {
    const id = await storeMessage(harness.pool, [`alice@${domain}`, `bob@${otherDomain}`]);

    const shown = await harness.app.inject({
      method: 'GET',
      url: `/api/messages/${id}`,
      headers: callers.member,
    });
    assert.equal(shown.statusCode, 200);
    assert.deepEqual(
      shown.json().recipients.map((recipient: { address: string }) => recipient.address),
      [`alice@${domain}`],
    );

    const listed = await harness.app.inject({
      method: 'GET',
      url: `/api/messages?recipient=bob@${otherDomain}`,
      headers: callers.member,
    });
    assert.deepEqual(listed.json().messages, []);
  });

  test('member action touches its own recipients only', async () => {
    const id = await storeMessage(harness.pool, [`carol@${domain}`, `dave@${otherDomain}`]);

    const single = await harness.app.inject({
      method: 'POST',
      url: `/api/messages/${id}/hold`,
      headers: callers.member,
    });
    assert.deepEqual(single.json(), { id, changed: 1 });
    assert.deepEqual(await states(id), {
      [`carol@${domain}`]: 'hold',
      [`dave@${otherDomain}`]: 'queued',
    });

    const foreign = await harness.app.inject({
      method: 'POST',
      url: '/api/messages/actions/bounce',
      headers: callers.member,
      payload: { domain: otherDomain },
    });
    assert.deepEqual(foreign.json(), { action: 'bounce', changed: 0, messages: 0 });

    const scoped = await harness.app.inject({
      method: 'POST',
      url: '/api/messages/actions/delete',
      headers: callers.member,
      payload: { state: 'hold' },
    });
    assert.equal(scoped.statusCode, 200);
    assert.deepEqual(await states(id), { [`dave@${otherDomain}`]: 'queued' });

    const all = await harness.app.inject({
      method: 'POST',
      url: '/api/messages/actions/delete',
      headers: callers.member,
      payload: { all: true },
    });
    assert.equal(all.statusCode, 403);
    assert.match(all.json().message, /body\/all needs an administrator token/);
    assert.deepEqual(await states(id), { [`dave@${otherDomain}`]: 'queued' });
  });

  test('admin bulk with all matches everything', async () => {
    const id = await storeMessage(harness.pool, [`erin@${domain}`, `frank@${otherDomain}`]);

    const response = await harness.app.inject({
      method: 'POST',
      url: '/api/messages/actions/hold',
      headers: AUTH,
      payload: { all: true },
    });

    assert.equal(response.statusCode, 200);
    assert.ok(response.json().changed >= 2);
    assert.deepEqual(await states(id), {
      [`erin@${domain}`]: 'hold',
      [`frank@${otherDomain}`]: 'hold',
    });
  });
});

function statuses(admin: number, member: number, otherMember: number) {
  return { admin, member, otherMember };
}
