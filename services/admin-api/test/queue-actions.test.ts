import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { newQueueId } from '@secondary-mx/contracts';
import {
  ADMIN_BOUNCE_REPLY,
  applyDeliveryOutcomes,
  completeFinalMessages,
  reclaimExpiredLeases,
} from '@secondary-mx/db';
import {
  AUTH,
  type EventRecorder,
  type Harness,
  recordControlEvents,
  startHarness,
  storeMessage,
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

const BACKOFF = { minMs: 60_000, maxMs: 3_600_000 };

/** Resolves once a queue.changed event arrives after the first `seen` recorded events. */
async function queueChangedAfter(seen: number): Promise<void> {
  await recorder.waitFor(
    (event) => event.type === 'queue.changed' && recorder.events.indexOf(event) >= seen,
  );
}

interface RecipientRow {
  id: string;
  state: string;
  due: boolean;
  attempts: number;
  pendingAction: string | null;
  bouncePending: boolean;
  lastReply: string | null;
  enhancedCode: string | null;
  remoteMta: string | null;
}

async function recipient(address: string): Promise<RecipientRow | undefined> {
  const result = await harness.pool.query<RecipientRow>(
    `SELECT id::text, state, next_attempt_at <= now() AS due, attempts,
            pending_action AS "pendingAction", bounce_pending AS "bouncePending",
            last_reply AS "lastReply", last_enhanced_code AS "enhancedCode",
            remote_mta AS "remoteMta"
     FROM recipients WHERE address = $1`,
    [address],
  );
  return result.rows[0];
}

/** Puts a recipient into a state, not due for an hour; `active` gets a lease of its own. */
async function setState(address: string, state: string, attempts = 1): Promise<string> {
  const leaseId = randomUUID();
  await harness.pool.query(
    `UPDATE recipients SET state = $2::recipient_state, attempts = $3,
       next_attempt_at = now() + interval '1 hour',
       lease_id = CASE WHEN $2::recipient_state = 'active' THEN $4::uuid END,
       lease_until = CASE WHEN $2::recipient_state = 'active'
         THEN now() + interval '10 minutes' END,
       remote_mta = 'mx.previous.example', last_reply = '451 4.3.0 later'
     WHERE address = $1`,
    [address, state, attempts, leaseId],
  );
  return leaseId;
}

/** Stores one message with a recipient in each state and returns its id and the lease. */
async function messageInEveryState(domain: string): Promise<{ id: string; leaseId: string }> {
  const states = ['queued', 'deferred', 'hold', 'active', 'delivered', 'failed', 'expired'];
  const id = await storeMessage(
    harness.pool,
    states.map((state) => `${state}@${domain}`),
  );
  let leaseId = '';
  for (const state of states) {
    const lease = await setState(`${state}@${domain}`, state);
    if (state === 'active') {
      leaseId = lease;
    }
  }
  return { id, leaseId };
}

async function act(id: string, action: string, headers = AUTH) {
  return harness.app.inject({ method: 'POST', url: `/api/messages/${id}/${action}`, headers });
}

async function bulk(action: string, payload: unknown, headers = AUTH) {
  return harness.app.inject({
    method: 'POST',
    url: `/api/messages/actions/${action}`,
    headers,
    payload: payload as object,
  });
}

/** Reports the outcome of an active recipient's attempt, as queue-store records a result. */
async function reportOutcome(
  queueId: string,
  leaseId: string,
  address: string,
  status: 'delivered' | 'deferred' | 'failed',
  reply: string,
) {
  const row = await recipient(address);
  return applyDeliveryOutcomes(
    harness.pool,
    {
      kind: 'delivery',
      leaseId,
      domain: address.slice(address.indexOf('@') + 1),
      attemptedAt: Date.now(),
      outcomes: [
        {
          recipientId: row?.id ?? '0',
          queueId,
          status,
          reply,
          remoteMta: 'mx.primary.example',
          ...(status === 'deferred' ? { failureKind: 'reply' as const } : {}),
        },
      ],
    },
    BACKOFF,
  );
}

async function bodyStored(queueId: string): Promise<boolean | undefined> {
  const result = await harness.pool.query<{ stored: boolean }>(
    'SELECT body IS NOT NULL AS stored FROM messages WHERE id = $1',
    [queueId],
  );
  return result.rows[0]?.stored;
}

describe('POST /api/messages/:id/retry', () => {
  test('retry makes queued and deferred due now', async () => {
    const domain = testDomain('retry');
    const { id } = await messageInEveryState(domain);
    await harness.pool.query(
      `INSERT INTO destination_probes (domain, next_probe_at, interval_ms)
       VALUES ($1, now() + interval '1 minute', 60000)`,
      [domain],
    );

    const seen = recorder.events.length;
    const response = await act(id, 'retry');

    assert.equal(response.statusCode, 200, response.body);
    assert.deepEqual(response.json(), { id, changed: 2 });
    assert.equal((await recipient(`queued@${domain}`))?.due, true);
    assert.equal((await recipient(`deferred@${domain}`))?.due, true);
    assert.equal((await recipient(`deferred@${domain}`))?.state, 'deferred');
    for (const state of ['hold', 'active', 'delivered', 'failed', 'expired']) {
      const row = await recipient(`${state}@${domain}`);
      assert.equal(row?.state, state, `${state} keeps its state`);
      assert.equal(row?.due, false, `${state} is not made due`);
    }
    const probes = await harness.pool.query('SELECT 1 FROM destination_probes WHERE domain = $1', [
      domain,
    ]);
    assert.equal(probes.rowCount, 0, 'the destination is no longer probed');
    await queueChangedAfter(seen);
  });
});

describe('POST /api/messages/:id/hold and release', () => {
  test('hold puts waiting recipients on hold', async () => {
    const domain = testDomain('hold');
    const { id } = await messageInEveryState(domain);

    const response = await act(id, 'hold');

    assert.deepEqual(response.json(), { id, changed: 3 });
    assert.equal((await recipient(`queued@${domain}`))?.state, 'hold');
    assert.equal((await recipient(`deferred@${domain}`))?.state, 'hold');
    const active = await recipient(`active@${domain}`);
    assert.equal(active?.state, 'active', 'the attempt in flight goes on');
    assert.equal(active?.pendingAction, 'hold');
    for (const state of ['delivered', 'failed', 'expired']) {
      assert.equal((await recipient(`${state}@${domain}`))?.state, state);
    }
  });

  test('held active recipient is held after a deferral', async () => {
    const domain = testDomain('hold-deferred');
    const { id, leaseId } = await messageInEveryState(domain);
    await act(id, 'hold');

    const changed = await reportOutcome(id, leaseId, `active@${domain}`, 'deferred', '451 later');

    assert.equal(changed[0]?.state, 'hold');
    const row = await recipient(`active@${domain}`);
    assert.equal(row?.state, 'hold');
    assert.equal(row?.pendingAction, null);
    assert.equal(row?.lastReply, '451 later', 'the attempt is recorded');
    assert.equal(row?.attempts, 2);
  });

  test('held active recipient is held when its lease runs out', async () => {
    const domain = testDomain('hold-lease');
    const { id } = await messageInEveryState(domain);
    await act(id, 'hold');
    await harness.pool.query(
      `UPDATE recipients SET lease_until = now() - interval '1 second' WHERE address = $1`,
      [`active@${domain}`],
    );

    await reclaimExpiredLeases(harness.pool);

    assert.equal((await recipient(`active@${domain}`))?.state, 'hold');
  });

  test('delivery wins over a requested hold', async () => {
    const domain = testDomain('hold-delivered');
    const { id, leaseId } = await messageInEveryState(domain);
    await act(id, 'hold');

    await reportOutcome(id, leaseId, `active@${domain}`, 'delivered', '250 ok');

    const row = await recipient(`active@${domain}`);
    assert.equal(row?.state, 'delivered');
    assert.equal(row?.pendingAction, null);
  });

  test('release makes held recipients due now', async () => {
    const domain = testDomain('release');
    const id = await storeMessage(harness.pool, [`fresh@${domain}`, `tried@${domain}`]);
    await setState(`fresh@${domain}`, 'hold', 0);
    await setState(`tried@${domain}`, 'hold', 3);

    const seen = recorder.events.length;
    const response = await act(id, 'release');

    assert.deepEqual(response.json(), { id, changed: 2 });
    const fresh = await recipient(`fresh@${domain}`);
    assert.equal(fresh?.state, 'queued', 'never tried: queued');
    assert.equal(fresh?.due, true);
    const tried = await recipient(`tried@${domain}`);
    assert.equal(tried?.state, 'deferred', 'tried before: deferred');
    assert.equal(tried?.due, true);
    await queueChangedAfter(seen);
  });

  test('release withdraws a hold of an active recipient', async () => {
    const domain = testDomain('release-active');
    const { id, leaseId } = await messageInEveryState(domain);
    await act(id, 'hold');

    const response = await act(id, 'release');

    assert.deepEqual(response.json(), { id, changed: 4 }, 'three held and the active one');
    assert.equal((await recipient(`active@${domain}`))?.pendingAction, null);
    await reportOutcome(id, leaseId, `active@${domain}`, 'deferred', '451 later');
    assert.equal((await recipient(`active@${domain}`))?.state, 'deferred');
  });
});

describe('POST /api/messages/:id/delete', () => {
  test('delete removes every recipient and the message', async () => {
    const domain = testDomain('delete');
    const { id, leaseId } = await messageInEveryState(domain);

    const response = await act(id, 'delete');

    assert.deepEqual(response.json(), { id, changed: 7 });
    const message = await harness.pool.query('SELECT 1 FROM messages WHERE id = $1', [id]);
    assert.equal(message.rowCount, 0);

    const late = await reportOutcome(id, leaseId, `active@${domain}`, 'delivered', '250 ok');
    assert.deepEqual(late, [], 'a late result changes nothing');
    const rows = await harness.pool.query('SELECT 1 FROM recipients WHERE message_id = $1', [id]);
    assert.equal(rows.rowCount, 0, 'a late result re-creates no recipient');
  });

  test('delete by domain leaves other domains', async () => {
    const domain = testDomain('delete-part');
    const other = testDomain('delete-keep');
    const id = await storeMessage(harness.pool, [`a@${domain}`, `b@${other}`]);
    await setState(`b@${other}`, 'delivered');

    const response = await bulk('delete', { domain });

    assert.deepEqual(response.json(), { action: 'delete', changed: 1, messages: 1 });
    assert.equal(await recipient(`a@${domain}`), undefined);
    assert.equal((await recipient(`b@${other}`))?.state, 'delivered');
    assert.equal(await bodyStored(id), false, 'the rest is final, so the bytes go');
  });
});

describe('POST /api/messages/:id/bounce', () => {
  test('bounce fails waiting and held recipients', async () => {
    const domain = testDomain('bounce');
    const { id } = await messageInEveryState(domain);

    const seen = recorder.events.length;
    const response = await act(id, 'bounce');

    assert.deepEqual(response.json(), { id, changed: 4 });
    for (const state of ['queued', 'deferred', 'hold']) {
      const row = await recipient(`${state}@${domain}`);
      assert.equal(row?.state, 'failed', state);
      assert.equal(row?.lastReply, ADMIN_BOUNCE_REPLY, state);
      assert.equal(row?.enhancedCode, '5.0.0', state);
      assert.equal(row?.remoteMta, null, state);
      assert.equal(row?.bouncePending, true, `${state} waits for its DSN`);
    }
    const active = await recipient(`active@${domain}`);
    assert.equal(active?.state, 'active');
    assert.equal(active?.pendingAction, 'bounce');
    const failed = await recipient(`failed@${domain}`);
    assert.equal(failed?.lastReply, '451 4.3.0 later', 'a final recipient is left alone');
    assert.equal(failed?.bouncePending, false);
    await queueChangedAfter(seen);
  });

  test('bytes stay until the bounce DSN is queued', async () => {
    const domain = testDomain('bounce-body');
    const id = await storeMessage(harness.pool, [`only@${domain}`]);

    await act(id, 'bounce');
    await completeFinalMessages(harness.pool, [id]);

    assert.equal(await bodyStored(id), true);
  });

  test('bounced active recipient fails after a deferral', async () => {
    const domain = testDomain('bounce-deferred');
    const { id, leaseId } = await messageInEveryState(domain);
    await act(id, 'bounce');

    const changed = await reportOutcome(id, leaseId, `active@${domain}`, 'deferred', '451 later');

    assert.equal(changed[0]?.state, 'failed');
    assert.equal(changed[0]?.bouncePending, true, 'queue-store maintenance sends its DSN');
    const row = await recipient(`active@${domain}`);
    assert.equal(row?.lastReply, ADMIN_BOUNCE_REPLY);
    assert.equal(row?.pendingAction, null);
  });

  test('a 5xx reply wins over a requested bounce', async () => {
    const domain = testDomain('bounce-5xx');
    const { id, leaseId } = await messageInEveryState(domain);
    await act(id, 'bounce');

    const changed = await reportOutcome(id, leaseId, `active@${domain}`, 'failed', '550 no');

    assert.equal(changed[0]?.state, 'failed');
    assert.equal(changed[0]?.bouncePending, false, 'the result reports it as any failure');
    assert.equal((await recipient(`active@${domain}`))?.lastReply, '550 no');
  });
});

describe('POST /api/messages/:id/:action errors', () => {
  test('unknown action and invalid id are 400', async () => {
    const id = await storeMessage(harness.pool, [`x@${testDomain('errors')}`]);

    const action = await act(id, 'requeue');
    assert.equal(action.statusCode, 400);
    assert.match(action.json().message, /action/);

    const invalid = await act('nonsense', 'hold');
    assert.equal(invalid.statusCode, 400);
    assert.match(invalid.json().message, /^id "nonsense"/);
  });

  test('unknown message is 404', async () => {
    const response = await act(newQueueId(), 'hold');
    assert.equal(response.statusCode, 404);
    assert.match(response.json().message, /is not in the queue/);
  });
});

describe('POST /api/messages/actions/:action', () => {
  test('filter body is checked', async () => {
    const cases: [unknown, RegExp][] = [
      [{}, /at least one of domain, state/],
      [{ stat: 'hold' }, /body\/stat is not a known field/],
      [{ domain: 'a.example', satte: 'hold' }, /body\/satte/],
      [{ state: 'bounced' }, /state/],
      [{ olderThan: 'soon' }, /olderThan "soon"/],
      [{ sender: 'nobody' }, /sender/],
      [{ domain: 'not_a_domain' }, /domain/],
      [{ all: false }, /at least one of/],
    ];
    for (const [payload, pattern] of cases) {
      const response = await bulk('hold', payload);
      assert.equal(response.statusCode, 400, JSON.stringify(payload));
      assert.match(response.json().message, pattern, JSON.stringify(payload));
    }
    const empty = await harness.app.inject({
      method: 'POST',
      url: '/api/messages/actions/hold',
      headers: AUTH,
    });
    assert.equal(empty.statusCode, 400);
  });

  test('filter by state and age selects recipients', async () => {
    const domain = testDomain('bulk-filter');
    const old = await storeMessage(harness.pool, [`old@${domain}`], {
      receivedAt: new Date(Date.now() - 3 * 86_400_000),
    });
    await storeMessage(harness.pool, [`new@${domain}`]);
    await storeMessage(harness.pool, [`held@${domain}`], {
      receivedAt: new Date(Date.now() - 3 * 86_400_000),
    });
    await setState(`held@${domain}`, 'hold');

    const response = await bulk('hold', { domain, state: 'queued', olderThan: '1d' });

    assert.deepEqual(response.json(), { action: 'hold', changed: 1, messages: 1 });
    assert.equal((await recipient(`old@${domain}`))?.state, 'hold');
    assert.equal((await recipient(`new@${domain}`))?.state, 'queued');
    const shown = await harness.app.inject({
      method: 'GET',
      url: `/api/messages?domain=${domain}&state=hold&olderThan=1d`,
      headers: AUTH,
    });
    assert.equal(shown.json().messages.length, 2);
    assert.ok(shown.json().messages.some((message: { id: string }) => message.id === old));
  });

  test('actions on 1000 messages count every change', async () => {
    const domain = testDomain('bulk');
    const other = testDomain('bulk-other');
    const ids = Array.from({ length: 1000 }, (_, i) => newQueueId(Date.now() - i));
    await harness.pool.query(
      `WITH inserted AS (
         INSERT INTO messages (id, sender, size, body, client_address, expires_at)
         SELECT id, 'sender@origin.example', 3, '\\x6869'::bytea, '127.0.0.1',
                now() + interval '35 days'
         FROM unnest($1::text[]) AS id
         RETURNING id
       )
       INSERT INTO recipients (message_id, address, domain)
       SELECT id, 'user@' || $2, $2 FROM inserted
       UNION ALL
       SELECT id, 'user@' || $3, $3 FROM inserted`,
      [ids, domain, other],
    );

    const expectations: [string, number][] = [
      ['hold', 1000],
      ['hold', 0],
      ['release', 1000],
      ['retry', 1000],
      ['bounce', 1000],
      ['delete', 1000],
    ];
    for (const [action, changed] of expectations) {
      const response = await bulk(action, { domain });
      assert.equal(response.statusCode, 200, response.body);
      assert.deepEqual(
        response.json(),
        { action, changed, messages: changed },
        `${action} changes ${changed}`,
      );
    }

    const left = await harness.pool.query<{ domain: string; state: string; count: number }>(
      `SELECT domain, state, count(*)::int AS count FROM recipients
       WHERE message_id = ANY($1) GROUP BY domain, state`,
      [ids],
    );
    assert.deepEqual(left.rows, [{ domain: other, state: 'queued', count: 1000 }]);
    const messages = await harness.pool.query(
      'SELECT 1 FROM messages WHERE id = ANY($1) AND body IS NOT NULL',
      [ids],
    );
    assert.equal(messages.rowCount, 1000, 'every message keeps its other recipient and bytes');
  });
});
