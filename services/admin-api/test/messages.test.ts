import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { domainToASCII } from 'node:url';
import { newQueueId } from '@secondary-mx/contracts';
import { AUTH, type Harness, startHarness, storeMessage, testDomain } from './support.ts';

let harness: Harness;

before(async () => {
  harness = await startHarness();
});

after(async () => {
  await harness.close();
});

interface MessagePage {
  messages: { id: string; recipients: { address: string; domain: string; state: string }[] }[];
  nextCursor: string | null;
}

async function getMessages(query: string): Promise<MessagePage> {
  const response = await harness.app.inject({
    method: 'GET',
    url: `/api/messages?${query}`,
    headers: AUTH,
  });
  assert.equal(response.statusCode, 200, response.body);
  return response.json<MessagePage>();
}

describe('GET /api/messages', () => {
  test('filter by domain shows matching recipients only', async () => {
    const first = testDomain('messages-a');
    const second = testDomain('messages-b');
    const shared = await storeMessage(harness.pool, [`one@${first}`, `two@${second}`]);
    const onlySecond = await storeMessage(harness.pool, [`three@${second}`]);

    const page = await getMessages(`domain=${first.toUpperCase()}`);

    assert.deepEqual(
      page.messages.map((message) => message.id),
      [shared],
    );
    assert.deepEqual(
      page.messages[0]?.recipients.map((r) => r.address),
      [`one@${first}`],
    );
    assert.equal(page.nextCursor, null);
    const other = await getMessages(`domain=${second}`);
    assert.deepEqual(
      other.messages.map((message) => message.id).sort(),
      [shared, onlySecond].sort(),
    );
  });

  test('filter by state', async () => {
    const domain = testDomain('messages-state');
    const heldId = await storeMessage(harness.pool, [`held@${domain}`]);
    const queuedId = await storeMessage(harness.pool, [`queued@${domain}`]);
    await harness.pool.query(`UPDATE recipients SET state = 'hold' WHERE address = $1`, [
      `held@${domain}`,
    ]);

    const onHold = await getMessages(`domain=${domain}&state=hold`);
    assert.deepEqual(
      onHold.messages.map((message) => message.id),
      [heldId],
    );
    assert.equal(onHold.messages[0]?.recipients[0]?.state, 'hold');

    const waiting = await getMessages(`domain=${domain}&state=queued`);
    assert.deepEqual(
      waiting.messages.map((message) => message.id),
      [queuedId],
    );
  });

  test('response fields are camelCase with ISO dates', async () => {
    const domain = testDomain('messages-shape');
    const id = await storeMessage(harness.pool, [`shape@${domain}`]);

    const page = await getMessages(`domain=${domain}`);
    const message = page.messages[0] as unknown as Record<string, unknown>;
    assert.equal(message.id, id);
    assert.equal(message.sender, 'sender@origin.example');
    assert.equal(typeof message.size, 'number');
    assert.match(String(message.receivedAt), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.match(String(message.expiresAt), /Z$/);
    assert.equal(message.completedAt, null);
    const recipient = (message.recipients as Record<string, unknown>[])[0] as Record<
      string,
      unknown
    >;
    assert.equal(recipient.address, `shape@${domain}`);
    assert.equal(recipient.state, 'queued');
    assert.equal(recipient.attempts, 0);
    assert.match(String(recipient.nextAttemptAt), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(recipient.lastAttemptAt, null);
    assert.equal(typeof recipient.id, 'string');
  });

  test('cursor pages through all messages', async () => {
    const domain = testDomain('messages-page');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push(await storeMessage(harness.pool, [`page${i}@${domain}`]));
    }
    ids.sort();

    const first = await getMessages(`domain=${domain}&limit=2`);
    assert.deepEqual(
      first.messages.map((message) => message.id),
      ids.slice(0, 2),
    );
    assert.equal(first.nextCursor, ids[1]);

    const second = await getMessages(`domain=${domain}&limit=2&cursor=${first.nextCursor}`);
    assert.deepEqual(
      second.messages.map((message) => message.id),
      ids.slice(2, 4),
    );
    assert.equal(second.nextCursor, ids[3]);

    const last = await getMessages(
      `domain=${domain}&limit=2&cursor=${second.nextCursor?.toLowerCase()}`,
    );
    assert.deepEqual(
      last.messages.map((message) => message.id),
      ids.slice(4),
    );
    assert.equal(last.nextCursor, null);
  });

  test('full last page is followed by an empty page', async () => {
    const domain = testDomain('messages-full');
    const ids = [
      await storeMessage(harness.pool, [`a@${domain}`]),
      await storeMessage(harness.pool, [`b@${domain}`]),
    ].sort();

    const first = await getMessages(`domain=${domain}&limit=2`);
    assert.equal(first.nextCursor, ids[1]);
    const empty = await getMessages(`domain=${domain}&limit=2&cursor=${first.nextCursor}`);
    assert.deepEqual(empty.messages, []);
    assert.equal(empty.nextCursor, null);
  });

  test('invalid query is 400 naming the field', async () => {
    const cases: [string, RegExp][] = [
      ['limit=0', /limit/],
      ['limit=501', /limit/],
      ['limit=ten', /limit/],
      ['state=bounced', /state/],
      ['domain=not_a_domain', /domain/],
      ['cursor=', /cursor/],
      ['cursor=garbage', /cursor "garbage" is not a queue id/],
      ['cursor=0000000000000000000I', /cursor/],
    ];
    for (const [query, field] of cases) {
      const response = await harness.app.inject({
        method: 'GET',
        url: `/api/messages?${query}`,
        headers: AUTH,
      });
      assert.equal(response.statusCode, 400, query);
      assert.match(response.json().message, field, query);
    }
  });

  test('limit defaults to 50', async () => {
    const domain = testDomain('messages-default');
    for (let i = 0; i < 51; i++) {
      await storeMessage(harness.pool, [`default${i}@${domain}`]);
    }

    const page = await getMessages(`domain=${domain}`);
    assert.equal(page.messages.length, 50);
    assert.equal(page.nextCursor, page.messages[49]?.id);

    const all = await getMessages(`domain=${domain}&limit=500`);
    assert.equal(all.messages.length, 51);
    assert.equal(all.nextCursor, null);
  });
});

const HOUR_MS = 3_600_000;

function hoursAgo(hours: number): Date {
  return new Date(Date.now() - hours * HOUR_MS);
}

async function listedIds(query: string): Promise<string[]> {
  return (await getMessages(query)).messages.map((message) => message.id);
}

describe('GET /api/messages filters', () => {
  test('sender local part exact, domain any case', async () => {
    const domain = testDomain('filter-sender');
    const senderDomain = testDomain('origin');
    const exact = await storeMessage(harness.pool, [`a@${domain}`], {
      sender: `Alice@${senderDomain.toUpperCase()}`,
    });
    await storeMessage(harness.pool, [`b@${domain}`], { sender: `alice@${senderDomain}` });
    await storeMessage(harness.pool, [`c@${domain}`], { sender: `Alice@other-${senderDomain}` });

    assert.deepEqual(await listedIds(`domain=${domain}&sender=Alice@${senderDomain}`), [exact]);
    assert.deepEqual(
      await listedIds(`domain=${domain}&sender=${encodeURIComponent(`<Alice@${senderDomain}>`)}`),
      [exact],
    );
  });

  test('sender with IDN domain matches both forms', async () => {
    const domain = testDomain('filter-idn');
    const unicode = `bücher-${domain.split('.')[0]}.example`;
    const stored = await storeMessage(harness.pool, [`a@${domain}`], { sender: `user@${unicode}` });

    const ascii = domainToASCII(unicode);
    assert.deepEqual(await listedIds(`domain=${domain}&sender=user@${ascii}`), [stored]);
    assert.deepEqual(
      await listedIds(`domain=${domain}&sender=${encodeURIComponent(`user@${unicode}`)}`),
      [stored],
    );
  });

  test('sender <> matches the null sender', async () => {
    const domain = testDomain('filter-null');
    const bounce = await storeMessage(harness.pool, [`a@${domain}`], { sender: '' });
    await storeMessage(harness.pool, [`b@${domain}`]);

    assert.deepEqual(await listedIds(`domain=${domain}&sender=%3C%3E`), [bounce]);
  });

  test('recipient filter shows matching recipients only', async () => {
    const domain = testDomain('filter-rcpt');
    const both = await storeMessage(harness.pool, [`Bob@${domain}`, `carol@${domain}`]);
    await storeMessage(harness.pool, [`bob@${domain}`]);

    const page = await getMessages(`recipient=Bob@${domain.toUpperCase()}`);
    assert.deepEqual(
      page.messages.map((message) => message.id),
      [both],
    );
    assert.deepEqual(
      page.messages[0]?.recipients.map((recipient) => recipient.address),
      [`Bob@${domain}`],
    );
  });

  test('olderThan and newerThan take durations and timestamps', async () => {
    const domain = testDomain('filter-age');
    const threeDays = await storeMessage(harness.pool, [`old@${domain}`], {
      receivedAt: hoursAgo(72),
    });
    const twoHours = await storeMessage(harness.pool, [`mid@${domain}`], {
      receivedAt: hoursAgo(2),
    });
    const fresh = await storeMessage(harness.pool, [`new@${domain}`]);

    assert.deepEqual(await listedIds(`domain=${domain}&olderThan=1d`), [threeDays]);
    assert.deepEqual(await listedIds(`domain=${domain}&newerThan=1d`), [twoHours, fresh]);
    assert.deepEqual(await listedIds(`domain=${domain}&olderThan=1h&newerThan=1d`), [twoHours]);
    assert.deepEqual(await listedIds(`domain=${domain}&olderThan=5400`), [threeDays, twoHours]);

    const dayAgo = hoursAgo(24).toISOString();
    assert.deepEqual(await listedIds(`domain=${domain}&olderThan=${dayAgo}`), [threeDays]);
    const offset = encodeURIComponent(dayAgo.replace(/\.\d{3}Z$/, '+00:00'));
    assert.deepEqual(await listedIds(`domain=${domain}&newerThan=${offset}`), [twoHours, fresh]);
    const tomorrow = new Date(Date.now() + 48 * HOUR_MS).toISOString().slice(0, 10);
    assert.deepEqual(await listedIds(`domain=${domain}&olderThan=${tomorrow}`), [
      threeDays,
      twoHours,
      fresh,
    ]);
  });

  test('invalid filters are 400 naming the field', async () => {
    const cases: [string, RegExp][] = [
      ['olderThan=yesterday', /olderThan "yesterday"/],
      ['olderThan=2025-12-01T08:00', /olderThan/],
      ['newerThan=2025-13-45', /newerThan/],
      ['newerThan=', /newerThan/],
      ['sender=nobody', /sender "nobody"/],
      ['sender=a@not_a_domain', /sender/],
      ['recipient=@example.org', /recipient/],
      ['recipient=x', /recipient/],
      ['stat=hold', /querystring\/stat is not a known field/],
    ];
    for (const [query, field] of cases) {
      const response = await harness.app.inject({
        method: 'GET',
        url: `/api/messages?${query}`,
        headers: AUTH,
      });
      assert.equal(response.statusCode, 400, query);
      assert.match(response.json().message, field, query);
    }
  });
});

describe('GET /api/messages paging', () => {
  test('pages stay stable while messages come and go', async () => {
    const domain = testDomain('paging-live');
    const original: string[] = [];
    for (let i = 0; i < 7; i++) {
      original.push(await storeMessage(harness.pool, [`m${i}@${domain}`]));
    }
    original.sort();

    const seen: string[] = [];
    const added: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const cursorQuery: string = cursor === null ? '' : `&cursor=${cursor}`;
      const page = await getMessages(`domain=${domain}&limit=3${cursorQuery}`);
      seen.push(...page.messages.map((message) => message.id));
      cursor = page.nextCursor;
      pages += 1;
      if (pages === 1) {
        // Between pages: new mail arrives, a listed message and an unlisted one leave.
        added.push(await storeMessage(harness.pool, [`late1@${domain}`]));
        added.push(await storeMessage(harness.pool, [`late2@${domain}`]));
        await harness.pool.query('DELETE FROM messages WHERE id = ANY($1)', [
          [original[1], original[4]],
        ]);
      }
    } while (cursor !== null && pages < 10);

    assert.equal(new Set(seen).size, seen.length, 'no message is listed twice');
    assert.deepEqual(seen, [...seen].sort(), 'pages come in queue id order');
    const expected = original.filter((id) => id !== original[4]);
    for (const id of expected) {
      assert.ok(seen.includes(id), `message ${id} is listed`);
    }
    assert.ok(!seen.includes(original[4] as string), 'a message removed before its page is gone');
    for (const id of added) {
      assert.ok(seen.includes(id), `message ${id} stored while paging is listed`);
    }
  });
});

interface MessageDetailBody {
  id: string;
  kind: string;
  bodyStored: boolean;
  clientAddress: string;
  recipients: {
    address: string;
    state: string;
    deliveryAttempts: {
      attemptedAt: string;
      status: string;
      reply: string | null;
      remoteMta: string | null;
    }[];
  }[];
}

describe('GET /api/messages/:id', () => {
  test('shows recipients and every delivery attempt', async () => {
    const domain = testDomain('detail');
    const id = await storeMessage(harness.pool, [`alice@${domain}`, `bob@${domain}`]);
    await harness.pool.query(
      `UPDATE recipients SET state = 'deferred', attempts = 2, last_reply = '451 4.3.0 later'
       WHERE address = $1`,
      [`alice@${domain}`],
    );
    await harness.pool.query(
      `INSERT INTO delivery_attempts (recipient_id, attempted_at, status, reply, remote_mta)
       SELECT id, now() - interval '10 minutes', 'deferred', '421 4.4.2 busy', 'mx1.example'
       FROM recipients WHERE address = $1
       UNION ALL
       SELECT id, now() - interval '1 minute', 'deferred', '451 4.3.0 later', 'mx2.example'
       FROM recipients WHERE address = $1`,
      [`alice@${domain}`],
    );

    const response = await harness.app.inject({
      method: 'GET',
      url: `/api/messages/${id.toLowerCase()}`,
      headers: AUTH,
    });

    assert.equal(response.statusCode, 200, response.body);
    const message = response.json<MessageDetailBody>();
    assert.equal(message.id, id);
    assert.equal(message.kind, 'mail');
    assert.equal(message.bodyStored, true);
    assert.equal(message.clientAddress, '127.0.0.1');
    assert.deepEqual(
      message.recipients.map((recipient) => recipient.address),
      [`alice@${domain}`, `bob@${domain}`],
    );
    const [alice, bob] = message.recipients;
    assert.equal(alice?.state, 'deferred');
    assert.deepEqual(
      alice?.deliveryAttempts.map((attempt) => [attempt.status, attempt.reply, attempt.remoteMta]),
      [
        ['deferred', '421 4.4.2 busy', 'mx1.example'],
        ['deferred', '451 4.3.0 later', 'mx2.example'],
      ],
    );
    assert.match(alice?.deliveryAttempts[0]?.attemptedAt ?? '', /^\d{4}-\d\d-\d\dT.*Z$/);
    assert.deepEqual(bob?.deliveryAttempts, []);
  });

  test('invalid id is 400, unknown id is 404', async () => {
    const invalid = await harness.app.inject({
      method: 'GET',
      url: '/api/messages/not-a-queue-id',
      headers: AUTH,
    });
    assert.equal(invalid.statusCode, 400);
    assert.match(invalid.json().message, /^id "not-a-queue-id" is not a queue id/);

    const unknown = newQueueId();
    const missing = await harness.app.inject({
      method: 'GET',
      url: `/api/messages/${unknown}`,
      headers: AUTH,
    });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().message, `message ${unknown} is not in the queue`);
  });
});

describe('GET /api/messages/:id/raw', () => {
  test('returns the stored bytes as message/rfc822', async () => {
    const id = await storeMessage(harness.pool, [`raw@${testDomain('raw')}`]);

    const response = await harness.app.inject({
      method: 'GET',
      url: `/api/messages/${id}/raw`,
      headers: AUTH,
    });

    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers['content-type']), /^message\/rfc822/);
    assert.equal(response.headers['content-disposition'], `attachment; filename="${id}.eml"`);
    assert.deepEqual(response.rawPayload, Buffer.from('Subject: test\r\n\r\nbody\r\n'));
  });

  test('deleted bytes are 410, unknown id is 404', async () => {
    const id = await storeMessage(harness.pool, [`gone@${testDomain('raw-gone')}`]);
    await harness.pool.query('UPDATE messages SET body = NULL WHERE id = $1', [id]);

    const deleted = await harness.app.inject({
      method: 'GET',
      url: `/api/messages/${id}/raw`,
      headers: AUTH,
    });
    assert.equal(deleted.statusCode, 410);
    assert.match(deleted.json().message, /deleted once every recipient is final/);

    const missing = await harness.app.inject({
      method: 'GET',
      url: `/api/messages/${newQueueId()}/raw`,
      headers: AUTH,
    });
    assert.equal(missing.statusCode, 404);
  });
});
