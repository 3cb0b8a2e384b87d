/**
 * Delivery status notifications as a sender sees them: the suite runs as separate processes,
 * the member's primary is a fake SMTP server, and DSNs travel through the sender domain's MX
 * (a second fake server behind the test's DNS server) and are read with mailparser.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  FakePrimary,
  type ReceivedMessage,
  SmtpClient,
  type Suite,
  startDnsServer,
  startFakePrimary,
  startSuite,
  type TestDnsServer,
} from '@secondary-mx/testkit';
import { type ParsedMail, simpleParser } from 'mailparser';
import pg from 'pg';

const LIFETIME_S = 6;
let suite: Suite;
let dns: TestDnsServer;
let primary: FakePrimary;
let senderMx: FakePrimary;
let database: pg.Client;

interface Envelope {
  from: string;
  to: string[];
  body?: string;
}

/** Sends one message through ingress with raw commands; returns the queue id. */
async function send({ from, to, body }: Envelope): Promise<string> {
  const { client } = await SmtpClient.connect(suite.smtpPort);
  try {
    assert.equal((await client.command('EHLO client.sender.example')).code, 250);
    const mail = await client.command(`MAIL FROM:${from}`);
    assert.equal(mail.code, 250, mail.text);
    for (const rcpt of to) {
      const reply = await client.command(`RCPT TO:${rcpt}`);
      assert.equal(reply.code, 250, reply.text);
    }
    assert.equal((await client.command('DATA')).code, 354);
    client.write(
      body ??
        'From: alice@sender.example\r\nSubject: test message\r\nMessage-ID: <t1@sender.example>\r\n\r\nHello.\r\n',
    );
    client.write('.\r\n');
    const reply = await client.read();
    assert.equal(reply.code, 250, reply.text);
    return /queued as ([0-9A-Z]{20})/.exec(reply.text)?.[1] as string;
  } finally {
    client.close();
  }
}

/** Waits for the DSN about a message to reach the sender's MX and parses it. */
async function dsnFor(
  queueId: string,
  count = 1,
  timeoutMs = 15_000,
): Promise<{ raw: ReceivedMessage; mail: ParsedMail }[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = senderMx.messages.filter((message) => message.raw.includes(queueId));
    if (found.length >= count) {
      return Promise.all(found.map(async (raw) => ({ raw, mail: await simpleParser(raw.raw) })));
    }
    if (Date.now() > deadline) {
      throw new Error(`no DSN for ${queueId} within ${timeoutMs} ms\n${suite.logs()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Splits the message/delivery-status part into its per-message and per-recipient field groups. */
function deliveryStatus(raw: Buffer): Record<string, string>[] {
  const text = raw.toString('utf8');
  const start = text.search(/Content-Type: message\/delivery-status/i);
  assert.ok(start >= 0, 'the DSN has a message/delivery-status part');
  const body = text.slice(text.indexOf('\r\n\r\n', start) + 4);
  const end = body.search(/\r\n--/);
  return body
    .slice(0, end)
    .replace(/\r\n[ \t]+/g, ' ')
    .split(/\r\n\r\n/)
    .filter((group) => group.trim() !== '')
    .map((group) =>
      Object.fromEntries(
        group
          .split('\r\n')
          .filter((line) => line.includes(':'))
          .map((line) => [
            line.slice(0, line.indexOf(':')).toLowerCase(),
            line.slice(line.indexOf(':') + 1).trim(),
          ]),
      ),
    );
}

async function dsnRows(queueId: string): Promise<number> {
  const result = await database.query<{ count: number }>(
    'SELECT count(*)::int AS count FROM messages WHERE dsn_of = $1',
    [queueId],
  );
  return result.rows[0]?.count ?? 0;
}

async function recipientState(queueId: string, address: string): Promise<string | undefined> {
  const result = await database.query<{ state: string }>(
    'SELECT state FROM recipients WHERE message_id = $1 AND address = $2',
    [queueId, address],
  );
  return result.rows[0]?.state;
}

before(async () => {
  primary = await startFakePrimary();
  senderMx = await startFakePrimary();
  const closed = await FakePrimary.create();
  dns = await startDnsServer({
    'sender.example': { MX: [{ preference: 10, exchange: 'mx.sender.example' }] },
    'mx.sender.example': { A: ['127.0.0.1'] },
  });
  suite = await startSuite({
    env: {
      DNS_SERVERS: dns.server,
      MX_DELIVERY_PORT: String(senderMx.port),
      MX_GREYLIST_DELAY: '0s',
      MX_QUEUE_LIFETIME: `${LIFETIME_S}s`,
      MX_DELAY_WARNINGS: '2s,4s',
      MX_RETRY_MIN: '500ms',
      MX_RETRY_MAX: '1s',
      MX_SCHEDULER_INTERVAL: '200ms',
      MX_CONNECT_TIMEOUT: '1s',
      // A short poll as well as the change event, so a domain approved while the services are
      // still connecting reaches ingress within the test's wait.
      MX_DOMAIN_REFRESH: '1s',
    },
  });
  database = new pg.Client({ connectionString: suite.environment.database.url });
  await database.connect();
  await database.query(
    `INSERT INTO domains (name, member_number, state, primary_hosts) VALUES
       ('member.example', '1001', 'approved', $1), ('down.example', '1002', 'approved', $2)`,
    [[primary.address], [closed.address]],
  );
  // ingress reloads its approved domains on this event.
  await suite.api('PATCH', '/api/domains/member.example', { primaryHosts: [primary.address] });
  primary.onRcpt = (address) =>
    address.startsWith('gone@')
      ? { code: 550, message: '5.1.1 <gone@member.example>: no such user' }
      : undefined;
  await suite.waitUntilRelayed('member.example');
  await suite.waitUntilRelayed('down.example');
});

after(async () => {
  await database?.end();
  await suite?.stop();
  await primary?.stop();
  await senderMx?.stop();
  await dns?.close();
});

describe('DSN', () => {
  test('a 550 bounces only its recipient, with the primary reply', async () => {
    const queueId = await send({
      from: '<alice@sender.example>',
      to: ['<ok@member.example>', '<gone@member.example>'],
    });
    const [dsn] = await dsnFor(queueId);
    assert.ok(dsn);
    assert.equal(dsn.raw.mailFrom, '', 'DSNs come from the null sender');
    assert.deepEqual(dsn.raw.rcptTo, ['alice@sender.example']);
    assert.equal(
      (dsn.mail.headers.get('content-type') as { value?: string }).value,
      'multipart/report',
    );
    assert.equal(
      (dsn.mail.headers.get('content-type') as { params?: Record<string, string> }).params?.[
        'report-type'
      ],
      'delivery-status',
    );
    const [perMessage, ...perRecipient] = deliveryStatus(dsn.raw.raw);
    assert.equal(perMessage?.['reporting-mta'], 'dns; mx2.example.net');
    assert.ok(perMessage?.['arrival-date']);
    assert.equal(perRecipient.length, 1, 'only the failed recipient is listed');
    const group = perRecipient[0] as Record<string, string>;
    assert.equal(group['final-recipient'], 'rfc822; gone@member.example');
    assert.equal(group.action, 'failed');
    assert.equal(group.status, '5.1.1');
    assert.match(
      group['diagnostic-code'] ?? '',
      /^smtp; 550 5\.1\.1 <gone@member\.example>: no such user/,
    );
    assert.match(group['remote-mta'] ?? '', /^dns; /);
    assert.ok(group['last-attempt-date']);
    assert.equal(await recipientState(queueId, 'ok@member.example'), 'delivered');
    assert.equal(await recipientState(queueId, 'gone@member.example'), 'failed');
  });

  test('RET=HDRS, ENVID and ORCPT are carried into the DSN', async () => {
    const queueId = await send({
      from: '<alice@sender.example> RET=HDRS ENVID=env+2B42',
      to: ['<gone@member.example> NOTIFY=FAILURE ORCPT=rfc822;gone+2Btag@member.example'],
      body: 'From: alice@sender.example\r\nSubject: with headers only\r\n\r\nSECRET BODY LINE\r\n',
    });
    const [dsn] = await dsnFor(queueId);
    assert.ok(dsn);
    const text = dsn.raw.raw.toString('utf8');
    assert.match(text, /Content-Type: text\/rfc822-headers/i);
    assert.doesNotMatch(text, /SECRET BODY LINE/, 'RET=HDRS returns no body');
    assert.match(text, /Subject: with headers only/);
    const [perMessage, group] = deliveryStatus(dsn.raw.raw);
    assert.equal(perMessage?.['original-envelope-id'], 'env+42');
    assert.equal(group?.['original-recipient'], 'rfc822;gone+tag@member.example');
  });

  test('the null sender and NOTIFY=NEVER get no DSN', async () => {
    const fromNull = await send({ from: '<>', to: ['<gone@member.example>'] });
    const never = await send({
      from: '<alice@sender.example>',
      to: ['<gone@member.example> NOTIFY=NEVER'],
    });
    for (const queueId of [fromNull, never]) {
      for (
        let i = 0;
        i < 50 && (await recipientState(queueId, 'gone@member.example')) !== 'failed';
        i++
      ) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(await recipientState(queueId, 'gone@member.example'), 'failed');
      assert.equal(await dsnRows(queueId), 0);
    }
  });

  test('NOTIFY=SUCCESS to a primary without DSN gets a relayed DSN', async () => {
    const queueId = await send({
      from: '<alice@sender.example>',
      to: ['<ok@member.example> NOTIFY=SUCCESS'],
    });
    const [dsn] = await dsnFor(queueId);
    assert.ok(dsn);
    const [, group] = deliveryStatus(dsn.raw.raw);
    assert.equal(group?.action, 'relayed');
    assert.equal(group?.['final-recipient'], 'rfc822; ok@member.example');
  });

  test('delay warnings once per age, then expiry bounces and deletes the bytes', async () => {
    const queueId = await send({ from: '<alice@sender.example>', to: ['<user@down.example>'] });
    const [first] = await dsnFor(queueId, 1, 6000);
    assert.ok(first);
    const [, delayed] = deliveryStatus(first.raw.raw);
    assert.equal(delayed?.action, 'delayed');
    assert.ok(delayed?.['will-retry-until'], 'a delay warning says until when we retry');
    assert.match(first.mail.text ?? '', /user@down\.example/);

    const all = await dsnFor(queueId, 3, (LIFETIME_S + 8) * 1000);
    const actions = all.map(({ raw }) => deliveryStatus(raw.raw)[1]?.action);
    assert.deepEqual(actions, ['delayed', 'delayed', 'failed'], 'two warnings, then the bounce');
    const expired = deliveryStatus((all[2] as { raw: ReceivedMessage }).raw.raw);
    assert.equal(expired[1]?.status, '4.4.7');
    assert.equal(expired[1]?.['final-recipient'], 'rfc822; user@down.example');
    assert.ok(expired[0]?.['arrival-date']);
    assert.match(expired[1]?.['diagnostic-code'] ?? '', /^smtp; /);
    assert.match(
      (all[2] as { mail: ParsedMail }).mail.text ?? '',
      /We tried\s+for less than a minute/,
      'says how long we tried',
    );

    assert.equal(await recipientState(queueId, 'user@down.example'), 'expired');
    const stored = await database.query('SELECT body IS NULL AS gone FROM messages WHERE id = $1', [
      queueId,
    ]);
    assert.equal(stored.rows[0].gone, true, 'the bytes are deleted');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(
      senderMx.messages.filter((message) => message.raw.includes(queueId)).length,
      3,
      'no more DSNs',
    );
  });
});
