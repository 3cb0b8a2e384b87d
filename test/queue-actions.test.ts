/**
 * Queue actions of the admin API across the suite as separate processes. The scheduler and
 * maintenance intervals are long, so a retry delivers and a bounce reaches the sender within
 * the test's wait only through the queue.changed event that admin-api publishes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  type FakePrimary,
  SmtpClient,
  type Suite,
  startDnsServer,
  startFakePrimary,
  startSuite,
  type TestDnsServer,
} from '@secondary-mx/testkit';
import { simpleParser } from 'mailparser';
import pg from 'pg';

let suite: Suite;
let dns: TestDnsServer;
let primary: FakePrimary;
let senderMx: FakePrimary;
let database: pg.Client;

/** Local parts whose RCPT the primary rejects with 451 while they are in this set. */
const deferredLocalParts = new Set<string>();

/** Sends one message through ingress with raw commands; returns the queue id. */
async function send(from: string, to: string): Promise<string> {
  const { client } = await SmtpClient.connect(suite.smtpPort);
  try {
    assert.equal((await client.command('EHLO client.sender.example')).code, 250);
    assert.equal((await client.command(`MAIL FROM:${from}`)).code, 250);
    const rcpt = await client.command(`RCPT TO:${to}`);
    assert.equal(rcpt.code, 250, rcpt.text);
    assert.equal((await client.command('DATA')).code, 354);
    client.write(
      'From: alice@sender.example\r\nSubject: stuck mail\r\nMessage-ID: <q1@sender.example>\r\n\r\nHello.\r\n.\r\n',
    );
    const reply = await client.read();
    assert.equal(reply.code, 250, reply.text);
    return /queued as ([0-9A-Z]{20})/.exec(reply.text)?.[1] as string;
  } finally {
    client.close();
  }
}

/** Returns the message/delivery-status part of a DSN, folded lines joined. */
function deliveryStatusPart(raw: Buffer): string {
  const text = raw.toString('utf8');
  const start = text.search(/^Content-Type: message\/delivery-status/im);
  assert.ok(start >= 0, 'the DSN has a message/delivery-status part');
  const body = text.slice(text.indexOf('\r\n\r\n', start) + 4);
  return body
    .slice(0, body.search(/\r\n--/))
    .replace(/\r\n[ \t]+/g, ' ')
    .replaceAll('\r\n', '\n');
}

async function recipientState(queueId: string): Promise<{ state: string; attempts: number }> {
  const result = await database.query<{ state: string; attempts: number }>(
    'SELECT state, attempts FROM recipients WHERE message_id = $1',
    [queueId],
  );
  return result.rows[0] ?? { state: 'missing', attempts: 0 };
}

async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 8000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what} within ${timeoutMs} ms did not happen\n${suite.logs()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Sends a message the primary defers and waits until its first attempt is recorded. */
async function sendDeferred(localPart: string, from = '<alice@sender.example>'): Promise<string> {
  deferredLocalParts.add(localPart);
  const queueId = await send(from, `<${localPart}@member.example>`);
  await waitFor(`deferral of ${queueId}`, async () => {
    const { state, attempts } = await recipientState(queueId);
    return state === 'deferred' && attempts === 1 ? true : undefined;
  });
  return queueId;
}

before(async () => {
  primary = await startFakePrimary();
  senderMx = await startFakePrimary();
  dns = await startDnsServer({
    'sender.example': { MX: [{ preference: 10, exchange: 'mx.sender.example' }] },
    'mx.sender.example': { A: ['127.0.0.1'] },
  });
  suite = await startSuite({
    env: {
      DNS_SERVERS: dns.server,
      MX_DELIVERY_PORT: String(senderMx.port),
      MX_GREYLIST_DELAY: '0s',
      MX_RETRY_MIN: '1h',
      MX_RETRY_MAX: '1h',
      MX_SCHEDULER_INTERVAL: '60s',
      MX_DOMAIN_REFRESH: '1s',
    },
  });
  database = new pg.Client({ connectionString: suite.environment.database.url });
  await database.connect();
  await database.query(
    `INSERT INTO domains (name, member_number, state, primary_hosts)
     VALUES ('member.example', '1001', 'approved', $1)`,
    [[primary.address]],
  );
  await suite.api('PATCH', '/api/domains/member.example', { primaryHosts: [primary.address] });
  primary.onRcpt = (address) =>
    deferredLocalParts.has(address.slice(0, address.indexOf('@')))
      ? { code: 451, message: '4.3.0 mailbox busy, try later' }
      : undefined;
  await suite.waitUntilRelayed('member.example');
});

after(async () => {
  await database?.end();
  await suite?.stop();
  await primary?.stop();
  await senderMx?.stop();
  await dns?.close();
});

describe('queue actions end to end', () => {
  test('retry delivers at once when the primary recovers', async () => {
    const queueId = await sendDeferred('later');
    deferredLocalParts.delete('later');

    const response = await suite.api('POST', `/api/messages/${queueId}/retry`);

    assert.equal(response.status, 200);
    assert.deepEqual(response.body, { id: queueId, changed: 1 });
    await waitFor('delivery after retry', async () =>
      (await recipientState(queueId)).state === 'delivered' ? true : undefined,
    );
    assert.ok(primary.messages.some((message) => message.raw.includes('<q1@sender.example>')));
  });

  test('hold then release delivers the held mail', async () => {
    const queueId = await sendDeferred('held');

    const held = await suite.api('POST', '/api/messages/actions/hold', {
      recipient: 'held@member.example',
    });
    assert.deepEqual(held.body, { action: 'hold', changed: 1, messages: 1 });
    assert.equal((await recipientState(queueId)).state, 'hold');

    deferredLocalParts.delete('held');
    const released = await suite.api('POST', `/api/messages/${queueId}/release`);
    assert.deepEqual(released.body, { id: queueId, changed: 1 });
    await waitFor('delivery after release', async () =>
      (await recipientState(queueId)).state === 'delivered' ? true : undefined,
    );
  });

  test('bounce sends the sender an RFC 3464 DSN', async () => {
    const queueId = await sendDeferred('stuck');

    const response = await suite.api('POST', `/api/messages/${queueId}/bounce`);
    assert.deepEqual(response.body, { id: queueId, changed: 1 });

    const dsn = await waitFor('DSN at the sender MX', async () =>
      senderMx.messages.find((message) => message.raw.includes(queueId)),
    );
    assert.equal(dsn.mailFrom, '', 'DSNs come from the null sender');
    assert.deepEqual(dsn.rcptTo, ['alice@sender.example']);
    const mail = await simpleParser(dsn.raw);
    const contentType = mail.headers.get('content-type') as {
      value: string;
      params: Record<string, string>;
    };
    assert.equal(contentType.value, 'multipart/report');
    assert.equal(contentType.params['report-type'], 'delivery-status');
    assert.equal(mail.subject, 'Undelivered Mail Returned to Sender');
    const fields = deliveryStatusPart(dsn.raw);
    assert.match(fields, /^Final-Recipient: rfc822; stuck@member\.example$/m);
    assert.match(fields, /^Action: failed$/m);
    assert.match(fields, /^Status: 5\.0\.0$/m);
    assert.match(
      fields,
      /^Diagnostic-Code: smtp; 554 5\.0\.0 Message returned to the sender by an administrator$/m,
    );
    assert.doesNotMatch(fields, /^Remote-MTA:/m, 'no remote server gave this reply');
    assert.match(mail.text ?? '', /Reason given by this mail system:/);

    const shown = await suite.api('GET', `/api/messages/${queueId}`);
    assert.equal(shown.body.recipients[0].state, 'failed');
    assert.equal(shown.body.recipients[0].deliveryAttempts.length, 1);
    await waitFor('message completed after its DSN', async () =>
      (await suite.api('GET', `/api/messages/${queueId}`)).body.bodyStored === false
        ? true
        : undefined,
    );
  });

  test('bounce sends no DSN to <> or for NOTIFY=NEVER', async () => {
    const fromNull = await sendDeferred('nobounce1', '<>');
    deferredLocalParts.add('nobounce2');
    const never = await send('<alice@sender.example>', '<nobounce2@member.example> NOTIFY=NEVER');
    await waitFor('deferral of the NOTIFY=NEVER message', async () =>
      (await recipientState(never)).state === 'deferred' ? true : undefined,
    );

    const response = await suite.api('POST', '/api/messages/actions/bounce', {
      domain: 'member.example',
      state: 'deferred',
    });
    assert.equal(response.body.changed, 2);

    for (const queueId of [fromNull, never]) {
      await waitFor(`completion of ${queueId}`, async () => {
        const shown = await suite.api('GET', `/api/messages/${queueId}`);
        return shown.body.bodyStored === false ? true : undefined;
      });
      const dsns = await database.query('SELECT 1 FROM messages WHERE dsn_of = $1', [queueId]);
      assert.equal(dsns.rowCount, 0, `no DSN about ${queueId}`);
    }
  });
});
