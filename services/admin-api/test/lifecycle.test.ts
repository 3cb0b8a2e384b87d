import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  AUTH,
  assertAccess,
  type Callers,
  createCallers,
  createTokenHeader,
  type EventRecorder,
  type Harness,
  HOSTNAME,
  recordControlEvents,
  registerDomain,
  startHarness,
  storeMessage,
  testDomain,
} from './support.ts';

// biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the route returns.
type Json = any;

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

type Method = 'GET' | 'POST' | 'DELETE';

async function call(method: Method, url: string, payload?: object, headers = AUTH): Promise<Json> {
  const response = await harness.app.inject({
    method,
    url,
    headers,
    ...(payload === undefined ? {} : { payload }),
  });
  return { status: response.statusCode, body: response.body ? response.json() : undefined };
}

async function events(domain: string, headers = AUTH) {
  const response = await call('GET', `/api/domains/${domain}/events`, undefined, headers);
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body.events as {
    at: string;
    actor: string;
    action: string;
    fromState: string | null;
    toState: string;
    reason: string | null;
    detail: string | null;
  }[];
}

async function recipientStates(queueId: string) {
  const result = await harness.pool.query<{ address: string; state: string; reply: string }>(
    `SELECT address, state, last_reply AS reply FROM recipients
     WHERE message_id = $1 ORDER BY address`,
    [queueId],
  );
  return result.rows;
}

describe('domain request', () => {
  test('request stores contact and note', async () => {
    const domain = testDomain('contact');
    const response = await call('POST', '/api/domains', {
      domain,
      memberNumber: 'M-20',
      contact: ' Admin@Bücher.Example ',
      note: '  second site  ',
    });

    assert.equal(response.status, 201, JSON.stringify(response.body));
    assert.equal(response.body.contact, 'Admin@xn--bcher-kva.example');
    assert.equal(response.body.note, 'second site');

    const history = await events(domain);
    assert.equal(history.length, 1);
    assert.equal(history[0]?.action, 'request');
    assert.equal(history[0]?.actor, 'admin');
    assert.equal(history[0]?.fromState, null);
    assert.equal(history[0]?.toState, 'pending');
  });

  test('request without contact and note stores null', async () => {
    const response = await call('POST', '/api/domains', {
      domain: testDomain('bare'),
      memberNumber: 'M-21',
    });
    assert.equal(response.status, 201);
    assert.equal(response.body.contact, null);
    assert.equal(response.body.note, null);
  });

  test('invalid request fields get 400 naming the field', async () => {
    const cases: [object, RegExp][] = [
      [{ contact: 'not-an-address' }, /body\/contact .*not a valid email address/],
      [{ contact: 'a@b@c.example' }, /body\/contact/],
      [{ contact: 'user@[192.0.2.1]' }, /body\/contact/],
      [{ contact: '' }, /body\/contact/],
      [{ contact: 'x'.repeat(321) }, /body\/contact/],
      [{ note: 'n'.repeat(1001) }, /body\/note/],
      [{ note: ['x'] }, /body\/note/],
      [{ notes: 'typo' }, /body\/notes is not a known field/],
      [{ memberNumber: 'M'.repeat(129) }, /body\/memberNumber/],
    ];
    for (const [fields, message] of cases) {
      const response = await call('POST', '/api/domains', {
        domain: testDomain('invalid'),
        memberNumber: 'M-22',
        ...fields,
      });
      assert.equal(response.status, 400, JSON.stringify(fields));
      assert.match(response.body.message, message, JSON.stringify(fields));
    }
  });

  test('member number must match the configured pattern', async () => {
    const custom = await startHarness({ env: { MX_MEMBER_NUMBER_PATTERN: 'M-\\d{4}' } });
    try {
      const accepted = await custom.app.inject({
        method: 'POST',
        url: '/api/domains',
        headers: AUTH,
        payload: { domain: testDomain('pattern'), memberNumber: ' M-1234 ' },
      });
      assert.equal(accepted.statusCode, 201, accepted.body);
      assert.equal(accepted.json().memberNumber, 'M-1234');

      for (const memberNumber of ['M-123', 'M-12345', 'x M-1234', '1234']) {
        const rejected = await custom.app.inject({
          method: 'POST',
          url: '/api/domains',
          headers: AUTH,
          payload: { domain: testDomain('pattern'), memberNumber },
        });
        assert.equal(rejected.statusCode, 400, memberNumber);
        assert.match(
          rejected.json().message,
          /body\/memberNumber .* does not match MX_MEMBER_NUMBER_PATTERN \(\^\(\?:M-\\d\{4\}\)\$\)/,
        );
      }
    } finally {
      await custom.close();
    }
  });
});

describe('approve and suspend', () => {
  test('approval returns the DNS record and a member token', async () => {
    const domain = await registerDomain(harness.app, testDomain('approval'));
    const response = await call('POST', `/api/domains/${domain}/approve`, {
      reason: 'membership confirmed',
    });

    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(response.body.domain.domain, domain);
    assert.equal(response.body.domain.state, 'approved');
    assert.equal(response.body.dnsRecord, `@ MX 200 ${HOSTNAME}.`);
    const memberToken = response.body.memberToken;
    assert.equal(memberToken.role, 'member');
    assert.equal(memberToken.domain, domain);
    assert.equal(memberToken.createdBy, 'admin');
    assert.match(memberToken.token, /^smx_[0-9a-f]{32}_/);

    const member = { authorization: `Bearer ${memberToken.token}` };
    const own = await call('GET', `/api/domains/${domain}`, undefined, member);
    assert.equal(own.status, 200);
    const other = await registerDomain(harness.app, testDomain('approval-other'));
    const foreign = await call('GET', `/api/domains/${other}`, undefined, member);
    assert.equal(foreign.status, 404);

    const event = await recorder.waitFor(
      (e) => e.type === 'domains.changed' && e.domain === domain,
    );
    assert.deepEqual(event, { type: 'domains.changed', domain });
  });

  test('approving an approved domain is 409', async () => {
    const domain = await registerDomain(harness.app, testDomain('twice'));
    assert.equal((await call('POST', `/api/domains/${domain}/approve`)).status, 200);

    const again = await call('POST', `/api/domains/${domain}/approve`);
    assert.equal(again.status, 409);
    assert.match(again.body.message, new RegExp(`domain ${domain} is already approved`));
    assert.equal((await events(domain)).length, 2, 'the refused approval records no event');
  });

  test('suspend needs an approved domain', async () => {
    const domain = await registerDomain(harness.app, testDomain('suspend-pending'));
    const response = await call('POST', `/api/domains/${domain}/suspend`);
    assert.equal(response.status, 409);
    assert.match(response.body.message, /is pending: only an approved domain can be suspended/);

    const unknown = await call('POST', `/api/domains/${testDomain('nowhere')}/suspend`);
    assert.equal(unknown.status, 404);
  });

  test('lifecycle records who, when and why', async () => {
    const domain = await registerDomain(harness.app, testDomain('history'));
    const adminToken = await createTokenHeader(harness.app, 'admin');
    const tokenId = (await call('GET', '/api/tokens')).body.tokens[0].id as string;
    const startedAt = Date.now();

    const approved = await call('POST', `/api/domains/${domain}/approve`, {}, adminToken);
    assert.equal(approved.status, 200);
    const memberTokenId = approved.body.memberToken.id as string;

    const suspended = await call(
      'POST',
      `/api/domains/${domain}/suspend`,
      { reason: '  fees unpaid  ' },
      adminToken,
    );
    assert.equal(suspended.status, 200);
    assert.equal(suspended.body.state, 'suspended');
    assert.equal(
      (await call('POST', `/api/domains/${domain}/suspend`)).status,
      409,
      'suspending twice',
    );

    const reapproved = await call('POST', `/api/domains/${domain}/approve`, {
      reason: 'fees paid',
    });
    assert.equal(reapproved.status, 200);
    assert.equal(reapproved.body.domain.state, 'approved');
    assert.equal(reapproved.body.memberToken, null, 'the first member token is still active');
    assert.equal(reapproved.body.dnsRecord, `@ MX 200 ${HOSTNAME}.`);

    const history = await events(domain);
    assert.deepEqual(
      history.map((event) => [
        event.action,
        event.actor,
        event.fromState,
        event.toState,
        event.reason,
      ]),
      [
        ['request', 'admin', null, 'pending', null],
        ['approve', `token:${tokenId}`, 'pending', 'approved', null],
        ['suspend', `token:${tokenId}`, 'approved', 'suspended', 'fees unpaid'],
        ['approve', 'admin', 'suspended', 'approved', 'fees paid'],
      ],
    );
    for (const event of history.slice(1)) {
      assert.ok(Date.parse(event.at) >= startedAt - 1000, event.at);
    }

    const revoked = await call('DELETE', `/api/tokens/${memberTokenId}`);
    assert.equal(revoked.status, 200);
    assert.equal((await call('POST', `/api/domains/${domain}/suspend`)).status, 200);
    const withNewToken = await call('POST', `/api/domains/${domain}/approve`);
    assert.equal(withNewToken.status, 200);
    assert.notEqual(withNewToken.body.memberToken, null, 'no active member token was left');
    assert.notEqual(withNewToken.body.memberToken.id, memberTokenId);
  });

  test('setting changes are recorded with old and new values', async () => {
    const domain = await registerDomain(harness.app, testDomain('settings'));
    const member = await createTokenHeader(harness.app, 'member', domain);
    const patch = (payload: object, headers = AUTH) =>
      harness.app.inject({ method: 'PATCH', url: `/api/domains/${domain}`, headers, payload });

    assert.equal((await patch({ greylist: false }, member)).statusCode, 200);
    const changed = await patch({
      primaryHosts: ['127.0.0.1:2526'],
      recipientCheck: 'list',
      reason: 'primary moved',
    });
    assert.equal(changed.statusCode, 200);
    assert.equal((await patch({ greylist: false })).statusCode, 200, 'no change');

    const history = (await events(domain)).filter((event) => event.action === 'change');
    assert.equal(history.length, 2, 'a request that changes nothing records no event');
    assert.match(history[0]?.actor ?? '', /^token:/);
    assert.equal(history[0]?.detail, 'greylist: true -> false');
    assert.equal(history[0]?.reason, null);
    assert.equal(history[0]?.fromState, 'pending');
    assert.equal(history[0]?.toState, 'pending');
    assert.equal(history[1]?.actor, 'admin');
    assert.equal(
      history[1]?.detail,
      'primaryHosts: [] -> ["127.0.0.1:2526"]; recipientCheck: "none" -> "list"',
    );
    assert.equal(history[1]?.reason, 'primary moved');
  });

  test('suspended domains are listed and counted', async () => {
    const domain = await registerDomain(harness.app, testDomain('listed'));
    await call('POST', `/api/domains/${domain}/approve`);
    await call('POST', `/api/domains/${domain}/suspend`);

    const listed = await call('GET', '/api/domains?state=suspended');
    assert.equal(listed.status, 200);
    assert.ok(listed.body.domains.some((row: { domain: string }) => row.domain === domain));

    const metrics = await harness.app.inject({ method: 'GET', url: '/metrics' });
    assert.match(metrics.body, /^secondary_mx_domains\{state="suspended"\} [1-9]\d*$/m);
  });

  test('reason body is validated', async () => {
    const domain = await registerDomain(harness.app, testDomain('reason'));
    const tooLong = await call('POST', `/api/domains/${domain}/approve`, {
      reason: 'r'.repeat(501),
    });
    assert.equal(tooLong.status, 400);
    assert.match(tooLong.body.message, /reason/);

    const notText = await call('POST', `/api/domains/${domain}/approve`, { reason: ['a'] });
    assert.equal(notText.status, 400);
    assert.match(notText.body.message, /reason/);

    const unknown = await call('POST', `/api/domains/${domain}/approve`, { reasons: 'typo' });
    assert.equal(unknown.status, 400);
    assert.match(unknown.body.message, /body\/reasons is not a known field/);

    const unknownQuery = await call('DELETE', `/api/domains/${domain}?wait=drop`);
    assert.equal(unknownQuery.status, 400);
    assert.match(unknownQuery.body.message, /querystring\/wait is not a known field/);
  });
});

describe('removal', () => {
  test('removal without waiting mail keeps the history', async () => {
    const domain = await registerDomain(harness.app, testDomain('remove'));
    const approved = await call('POST', `/api/domains/${domain}/approve`);
    const member = { authorization: `Bearer ${approved.body.memberToken.token}` };
    await harness.app.inject({
      method: 'PUT',
      url: `/api/domains/${domain}/recipients`,
      headers: AUTH,
      payload: { recipients: ['alice@'] },
    });

    const removed = await call('DELETE', `/api/domains/${domain}?reason=left%20the%20association`);
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    assert.deepEqual(removed.body, { domain, removed: true, bounced: 0, dropped: 0 });

    assert.equal((await call('GET', `/api/domains/${domain}`)).status, 404);
    assert.equal((await call('GET', `/api/domains/${domain}`, undefined, member)).status, 401);
    const list = await harness.pool.query('SELECT 1 FROM domain_recipients WHERE domain = $1', [
      domain,
    ]);
    assert.equal(list.rowCount, 0);

    const history = await events(domain);
    const last = history.at(-1);
    assert.equal(last?.action, 'remove');
    assert.equal(last?.fromState, 'approved');
    assert.equal(last?.toState, 'removed');
    assert.equal(last?.reason, 'left the association');
    assert.equal(last?.detail, 'no mail was waiting');

    // The approval, the recipient list and the removal each publish one.
    await recorder.waitFor(
      () =>
        recorder.events.filter((seen) => seen.type === 'domains.changed' && seen.domain === domain)
          .length === 3,
    );

    assert.equal((await call('DELETE', `/api/domains/${domain}`)).status, 404);
  });

  test('waiting mail blocks removal by default', async () => {
    const domain = await registerDomain(harness.app, testDomain('refuse'));
    const queueId = await storeMessage(harness.pool, [`alice@${domain}`]);

    const refused = await call('DELETE', `/api/domains/${domain}`);
    assert.equal(refused.status, 409);
    assert.match(
      refused.body.message,
      new RegExp(`1 recipients of ${domain} are not delivered yet`),
    );
    assert.match(refused.body.message, /waiting=bounce or \?waiting=drop/);
    assert.equal((await call('GET', `/api/domains/${domain}`)).status, 200);
    assert.deepEqual(
      (await recipientStates(queueId)).map((row) => row.state),
      ['queued'],
    );
    assert.equal((await events(domain)).length, 1, 'the refused removal records no event');
  });

  test('bounce fails waiting mail for DSNs', async () => {
    const domain = await registerDomain(harness.app, testDomain('bounce'));
    const other = await registerDomain(harness.app, testDomain('bounce-other'));
    const mixed = await storeMessage(harness.pool, [`alice@${domain}`, `bob@${other}`]);
    const single = await storeMessage(harness.pool, [`carol@${domain}`]);
    await harness.pool.query(`UPDATE recipients SET state = 'hold' WHERE message_id = $1`, [
      single,
    ]);

    const removed = await call('DELETE', `/api/domains/${domain}?waiting=bounce`, {
      reason: 'closed down',
    });
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    assert.deepEqual(removed.body, { domain, removed: true, bounced: 2, dropped: 0 });

    const mixedStates = await recipientStates(mixed);
    assert.equal(mixedStates[0]?.state, 'failed');
    assert.equal(
      mixedStates[0]?.reply,
      `554 5.0.0 ${domain} was removed from this backup MX by its administrator, so the message was not delivered`,
    );
    assert.equal(mixedStates[1]?.state, 'queued', 'the other domain is not touched');
    assert.equal((await recipientStates(single))[0]?.state, 'failed');

    // queue-store queues the DSNs of recipients marked bounce_pending.
    const pending = await harness.pool.query<{ address: string; code: string }>(
      `SELECT address, last_enhanced_code AS code FROM recipients
       WHERE bounce_pending AND message_id = ANY($1) ORDER BY address`,
      [[mixed, single]],
    );
    assert.deepEqual(pending.rows, [
      { address: `alice@${domain}`, code: '5.0.0' },
      { address: `carol@${domain}`, code: '5.0.0' },
    ]);
    await recorder.waitFor((event) => event.type === 'queue.changed');

    const last = (await events(domain)).at(-1);
    assert.equal(last?.reason, 'closed down');
    assert.equal(last?.detail, 'bounced 2 undelivered recipients with 5.0.0');
  });

  test('drop deletes waiting mail without DSNs', async () => {
    const domain = await registerDomain(harness.app, testDomain('drop'));
    const other = await registerDomain(harness.app, testDomain('drop-other'));
    const mixed = await storeMessage(harness.pool, [`alice@${domain}`, `bob@${other}`]);
    const single = await storeMessage(harness.pool, [`carol@${domain}`, `dave@${domain}`]);

    const removed = await call('DELETE', `/api/domains/${domain}?waiting=drop`);
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    assert.deepEqual(removed.body, { domain, removed: true, bounced: 0, dropped: 3 });

    assert.deepEqual(
      (await recipientStates(mixed)).map((row) => row.address),
      [`bob@${other}`],
    );
    const gone = await harness.pool.query('SELECT 1 FROM messages WHERE id = $1', [single]);
    assert.equal(gone.rowCount, 0, 'a message without recipients is deleted');
    const bounced = await harness.pool.query(
      'SELECT 1 FROM recipients WHERE bounce_pending AND message_id = $1',
      [mixed],
    );
    assert.equal(bounced.rowCount, 0);
    assert.equal(
      (await events(domain)).at(-1)?.detail,
      'dropped 3 undelivered recipients without a DSN',
    );
  });

  test('recipients in delivery count as undelivered', async () => {
    const leaseAll = (queueId: string) =>
      harness.pool.query(
        `UPDATE recipients SET state = 'active', lease_id = gen_random_uuid(),
           lease_until = now() + interval '1 minute'
         WHERE message_id = $1`,
        [queueId],
      );

    const refusing = await registerDomain(harness.app, testDomain('active-refuse'));
    await leaseAll(await storeMessage(harness.pool, [`alice@${refusing}`]));
    const refused = await call('DELETE', `/api/domains/${refusing}`);
    assert.equal(refused.status, 409);
    assert.match(refused.body.message, /1 recipients of .* are not delivered yet/);

    const bouncing = await registerDomain(harness.app, testDomain('active-bounce'));
    const bouncedId = await storeMessage(harness.pool, [`alice@${bouncing}`]);
    await leaseAll(bouncedId);
    const bounced = await call('DELETE', `/api/domains/${bouncing}?waiting=bounce`);
    assert.equal(bounced.status, 200, JSON.stringify(bounced.body));
    assert.equal(bounced.body.bounced, 1);
    const marked = await harness.pool.query<{ state: string; pendingAction: string }>(
      `SELECT state, pending_action AS "pendingAction" FROM recipients WHERE message_id = $1`,
      [bouncedId],
    );
    assert.deepEqual(marked.rows, [{ state: 'active', pendingAction: 'bounce' }]);

    const dropping = await registerDomain(harness.app, testDomain('active-drop'));
    const droppedId = await storeMessage(harness.pool, [`alice@${dropping}`]);
    await leaseAll(droppedId);
    const dropped = await call('DELETE', `/api/domains/${dropping}?waiting=drop`);
    assert.equal(dropped.status, 200, JSON.stringify(dropped.body));
    assert.equal(dropped.body.dropped, 1);
    const left = await harness.pool.query('SELECT 1 FROM messages WHERE id = $1', [droppedId]);
    assert.equal(left.rowCount, 0);
  });

  test('invalid waiting choice is 400', async () => {
    const domain = await registerDomain(harness.app, testDomain('choice'));
    const response = await call('DELETE', `/api/domains/${domain}?waiting=keep`);
    assert.equal(response.status, 400);
    assert.match(response.body.message, /waiting/);
  });

  test('a new registration starts a new member history', async () => {
    const domain = await registerDomain(harness.app, testDomain('again'));
    await call('POST', `/api/domains/${domain}/approve`);
    assert.equal((await call('DELETE', `/api/domains/${domain}`)).status, 200);

    const removedHistory = await events(domain);
    assert.deepEqual(
      removedHistory.map((event) => event.action),
      ['request', 'approve', 'remove'],
    );

    await registerDomain(harness.app, domain);
    const approved = await call('POST', `/api/domains/${domain}/approve`);
    const member = { authorization: `Bearer ${approved.body.memberToken.token}` };

    assert.deepEqual(
      (await events(domain)).map((event) => event.action),
      ['request', 'approve', 'remove', 'request', 'approve'],
    );
    assert.deepEqual(
      (await events(domain, member)).map((event) => event.action),
      ['request', 'approve'],
    );
  });

  test('events of an unknown domain are 404', async () => {
    const response = await call('GET', `/api/domains/${testDomain('never')}/events`);
    assert.equal(response.status, 404);
    assert.match(response.body.message, /is not registered/);
  });
});

describe('access', () => {
  let domain: string;
  let callers: Callers;

  before(async () => {
    domain = await registerDomain(harness.app, testDomain('access'));
    const other = await registerDomain(harness.app, testDomain('access-other'));
    callers = await createCallers(harness.app, domain, other, AUTH);
  });

  test('lifecycle routes are admin only', async () => {
    await assertAccess(
      harness.app,
      { method: 'POST', url: `/api/domains/${domain}/approve` },
      { admin: 200, member: 403, otherMember: 403 },
      callers,
    );
    await assertAccess(
      harness.app,
      { method: 'POST', url: `/api/domains/${domain}/suspend` },
      { admin: 200, member: 403, otherMember: 403 },
      callers,
    );
    await assertAccess(
      harness.app,
      () => ({
        method: 'POST',
        url: '/api/domains',
        payload: { domain: testDomain('access-new'), memberNumber: 'M-9' },
      }),
      { admin: 201, member: 403, otherMember: 403 },
      callers,
    );
  });

  test('events are shown to the own member only', async () => {
    await assertAccess(
      harness.app,
      { method: 'GET', url: `/api/domains/${domain}/events` },
      { admin: 200, member: 200, otherMember: 404 },
      callers,
    );
  });

  test('removal is admin only', async () => {
    const target = await registerDomain(harness.app, testDomain('access-remove'));
    await assertAccess(
      harness.app,
      { method: 'DELETE', url: `/api/domains/${target}` },
      { admin: 200, member: 403, otherMember: 403 },
      {
        ...callers,
        member: await createTokenHeader(harness.app, 'member', target),
      },
    );
  });
});
