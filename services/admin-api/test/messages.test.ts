import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
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

    const last = await getMessages(`domain=${domain}&limit=2&cursor=${second.nextCursor}`);
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
