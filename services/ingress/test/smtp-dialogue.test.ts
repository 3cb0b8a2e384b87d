import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Broker } from '@secondary-mx/amqp';
import { loadSettings } from '@secondary-mx/config';
import { EXCHANGE, parseControlEvent } from '@secondary-mx/contracts';
import { createLogger } from '@secondary-mx/logger';
import {
  freePort,
  SmtpClient,
  type SmtpReply,
  startDnsServer,
  type TestDnsServer,
  testEnvironment,
} from '@secondary-mx/testkit';
import pg from 'pg';
import { startQueueStore } from '../../queue-store/src/service.ts';
import { QUEUE_STORE_SETTINGS } from '../../queue-store/src/settings.ts';
import { startIngress } from '../src/service.ts';
import { INGRESS_SETTINGS } from '../src/settings.ts';

const environment = testEnvironment('ingress');
const logger = createLogger('test', process.env.TEST_LOG_LEVEL ?? 'silent');
const MAX_HOPS = 5;
let port: number;
let database: pg.Client;
let dns: TestDnsServer;
let stopAll: () => Promise<void>;

async function countMessages(): Promise<number> {
  const result = await database.query<{ count: string }>('SELECT count(*) FROM messages');
  return Number(result.rows[0]?.count);
}

/** Sends a command line whose text may hold UTF-8; SmtpClient writes each char as one octet. */
function utf8Command(client: SmtpClient, line: string): Promise<SmtpReply> {
  return client.command(Buffer.from(line, 'utf8').toString('latin1'));
}

/** Opens a session up to an accepted MAIL FROM. */
async function openTransaction(mailFrom = '<alice@sender.example>') {
  const { client } = await SmtpClient.connect(port);
  assert.equal((await client.command('EHLO client.example')).code, 250);
  const reply = await client.command(`MAIL FROM:${mailFrom}`);
  assert.equal(reply.code, 250, reply.text);
  return client;
}

/** Asserts that a reply starts with the expected code and enhanced code, such as `550 5.7.1`. */
function assertReply(reply: SmtpReply, expected: string): void {
  const escaped = expected.replaceAll('.', '\\.');
  assert.match(reply.text, new RegExp(`^${escaped}( |$)`), `expected ${expected}`);
}

/** Sends DATA and the message text, which must end with CRLF; resolves with the final reply. */
async function sendData(client: SmtpClient, text: string | Buffer): Promise<SmtpReply> {
  assert.equal((await client.command('DATA')).code, 354);
  client.write(text);
  client.write('.\r\n');
  return client.read();
}

/** Returns the stored body and recipient addresses of the message the 250 reply names. */
async function storedMessage(reply: SmtpReply): Promise<{ body: Buffer; recipients: string[] }> {
  const match = /queued as ([0-9A-Z]{20})$/.exec(reply.text);
  assert.ok(match, reply.text);
  const message = await database.query<{ body: Buffer }>(
    'SELECT body FROM messages WHERE id = $1',
    [match[1]],
  );
  const recipients = await database.query<{ address: string }>(
    'SELECT address FROM recipients WHERE message_id = $1 ORDER BY id',
    [match[1]],
  );
  assert.equal(message.rowCount, 1);
  return {
    body: (message.rows[0] as { body: Buffer }).body,
    recipients: recipients.rows.map((row) => row.address),
  };
}

before(async () => {
  port = await freePort();
  dns = await startDnsServer({
    'sender.example': { MX: [{ preference: 10, exchange: 'mx.sender.example' }] },
    'mx.sender.example': { A: ['192.0.2.25'] },
    'a-only.example': { A: ['192.0.2.26'] },
    'aaaa-only.example': { AAAA: ['2001:db8::26'] },
    'null-mx.example': { MX: [{ preference: 0, exchange: '.' }] },
    'no-records.example': {},
  });
  dns.setFailure('servfail.example', 'SERVFAIL');
  dns.setFailure('silent.example', 'no-response');
  const env = {
    ...environment.env,
    MX_HOSTNAME: 'mx2.example.net',
    MX_SMTP_LISTEN: `127.0.0.1:${port}`,
    MX_MAX_MESSAGE_SIZE: '10000',
    MX_SPOOL_TIMEOUT: '3s',
    MX_GREYLIST_TIMEOUT: '200ms',
    MX_SCHEDULER_INTERVAL: '60s',
    MX_MAX_HOPS: String(MAX_HOPS),
    MX_DNSBL_ZONES: 'bl.test',
    MX_DNS_TIMEOUT: '300ms',
    // Sessions here test the transaction; session-limits.test.ts covers the pregreet wait.
    MX_PREGREET_WAIT: '0s',
    DNS_SERVERS: dns.server,
  };
  const queueStore = await startQueueStore(loadSettings(QUEUE_STORE_SETTINGS, env), logger);
  database = new pg.Client({ connectionString: environment.database.url });
  await database.connect();
  await database.query(
    `INSERT INTO domains (name, member_number, state) VALUES
       ('member.example', '1001', 'approved'), ('pending.example', '1002', 'pending'),
       ('suspended.example', '1005', 'suspended'),
       ('example.org', '1003', 'approved'), ('xn--bcher-kva.example', '1004', 'approved')`,
  );
  const ingress = await startIngress(loadSettings(INGRESS_SETTINGS, env), logger);
  for (let i = 0; i < 100; i++) {
    const { client } = await SmtpClient.connect(port);
    await client.command('EHLO client.example');
    await client.command('MAIL FROM:<probe@sender.example>');
    const reply = await client.command('RCPT TO:<probe@member.example>');
    client.close();
    if (reply.code === 250) {
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  stopAll = async () => {
    await ingress.stop();
    await queueStore.stop();
  };
});

after(async () => {
  await stopAll?.();
  await database?.end();
  await dns?.close();
  await environment.database.drop();
});

test('greeting names ESMTP once', async () => {
  const { client, greeting } = await SmtpClient.connect(port);
  client.close();
  assert.equal(greeting.text, '220 mx2.example.net ESMTP secondary-mx');
});

describe('RCPT TO relay check', () => {
  const cases: { rcpt: string; code: number; enhanced?: string }[] = [
    { rcpt: '<bob@member.example>', code: 250 },
    { rcpt: '<Bob@MEMBER.Example>', code: 250 },
    { rcpt: '<bob@member.example.>', code: 501 },
    { rcpt: '<bob@other.example>', code: 550, enhanced: '5.7.1' },
    { rcpt: '<bob@pending.example>', code: 550, enhanced: '5.7.1' },
    { rcpt: '<bob@suspended.example>', code: 450, enhanced: '4.7.1' },
    { rcpt: '<bob@sub.member.example>', code: 550, enhanced: '5.7.1' },
    { rcpt: '<victim%other.example@member.example>', code: 550, enhanced: '5.7.1' },
    { rcpt: '<other.example!victim@member.example>', code: 550, enhanced: '5.7.1' },
    { rcpt: '<@member.example:victim@other.example>', code: 550 },
    { rcpt: '<"victim@other.example"@member.example>', code: 501 },
    { rcpt: '<bob@[127.0.0.1]>', code: 550, enhanced: '5.7.1' },
  ];
  for (const { rcpt, code, enhanced } of cases) {
    test(`RCPT TO:${rcpt} gets ${code}`, async () => {
      const client = await openTransaction();
      const reply = await client.command(`RCPT TO:${rcpt}`);
      client.close();
      if (code >= 500) {
        assert.ok(reply.code >= 500 && reply.code < 600, `expected 5xx, got ${reply.text}`);
      }
      assert.equal(reply.code, code, reply.text);
      if (enhanced) {
        assert.match(reply.text, new RegExp(`^${code} ${enhanced.replaceAll('.', '\\.')} `));
      }
    });
  }
});

test('suspended domain reply names the primary MX', async () => {
  const client = await openTransaction();
  const reply = await client.command('RCPT TO:<Bob@Suspended.Example>');
  client.close();
  assert.equal(
    reply.text,
    "450 4.7.1 <Bob@suspended.example>: relaying for suspended.example is suspended at this backup MX, deliver to the domain's primary MX",
  );
});

describe('DATA', () => {
  test('accepted message answers 250 with the queue id after commit', async () => {
    const client = await openTransaction();
    assert.equal((await client.command('RCPT TO:<bob@member.example>')).code, 250);
    assert.equal((await client.command('DATA')).code, 354);
    client.write('Subject: test\r\n\r\nbody\r\n.\r\n');
    const reply = await client.read();
    client.close();
    assert.equal(reply.code, 250, reply.text);
    const match = /^250 2\.0\.0 Ok: queued as ([0-9A-Z]{20})$/.exec(reply.text);
    assert.ok(match, reply.text);
    const stored = await database.query('SELECT body FROM messages WHERE id = $1', [match[1]]);
    assert.equal(stored.rowCount, 1);
    const body = (stored.rows[0] as { body: Buffer }).body.toString('latin1');
    assert.match(body, /^Received: from client\.example \([^ ()]+ \[127\.0\.0\.1\]\)\r\n/);
    assert.match(
      body,
      new RegExp(`by mx2\\.example\\.net \\(secondary-mx\\) with ESMTP id ${match[1]}\\r\\n`),
    );
    assert.match(
      body,
      /\tfor <bob@member\.example>; \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000\r\n/,
    );
    assert.ok(body.endsWith('Subject: test\r\n\r\nbody\r\n'));
  });

  test('HELO session is recorded as SMTP', async () => {
    const { client } = await SmtpClient.connect(port);
    assert.equal((await client.command('HELO client.example')).code, 250);
    assert.equal((await client.command('MAIL FROM:<alice@sender.example>')).code, 250);
    assert.equal((await client.command('RCPT TO:<bob@member.example>')).code, 250);
    const reply = await sendData(client, 'Subject: helo\r\n\r\nbody\r\n');
    client.close();
    const { body } = await storedMessage(reply);
    assert.match(body.toString('latin1'), /\(secondary-mx\) with SMTP id /);
  });

  test('declared SIZE over the limit gets 552 5.3.4', async () => {
    const { client } = await SmtpClient.connect(port);
    const ehlo = await client.command('EHLO client.example');
    assert.match(ehlo.text, /250[- ]SIZE 10000/);
    const reply = await client.command('MAIL FROM:<alice@sender.example> SIZE=20000');
    client.close();
    assert.equal(reply.code, 552);
    assert.match(reply.text, /^552 5\.3\.4 /);
  });

  test('actual size over the limit gets 552 5.3.4 and stores nothing', async () => {
    const before = await countMessages();
    const client = await openTransaction();
    assert.equal((await client.command('RCPT TO:<bob@member.example>')).code, 250);
    assert.equal((await client.command('DATA')).code, 354);
    client.write(`Subject: big\r\n\r\n${'x'.repeat(76)}\r\n`.repeat(200));
    client.write('.\r\n');
    const reply = await client.read();
    assert.equal(reply.code, 552, reply.text);
    assert.match(reply.text, /^552 5\.3\.4 /);
    assert.equal((await client.command('NOOP')).code, 250, 'session goes on after the rejection');
    client.close();
    assert.equal(await countMessages(), before);
  });

  test('invalid sender address gets 553 5.1.7', async () => {
    const { client } = await SmtpClient.connect(port);
    await client.command('EHLO client.example');
    const reply = await client.command('MAIL FROM:<alice@invalid..example>');
    client.close();
    assert.ok(reply.code >= 500, reply.text);
  });

  test('null sender is accepted', async () => {
    const client = await openTransaction('<>');
    const reply = await client.command('RCPT TO:<bob@member.example>');
    client.close();
    assert.equal(reply.code, 250, reply.text);
  });
});

describe('VRFY and EXPN', () => {
  test('EXPN is declined as not implemented', async () => {
    const { client } = await SmtpClient.connect(port);
    await client.command('EHLO client.example');
    const reply = await client.command('EXPN staff');
    const after = await client.command('NOOP');
    client.close();
    assert.equal(reply.text, '502 5.5.1 EXPN is not implemented');
    assert.equal(after.code, 250);
  });

  test('VRFY gets 252 without confirming the address', async () => {
    const { client } = await SmtpClient.connect(port);
    await client.command('EHLO client.example');
    const reply = await client.command('VRFY bob@member.example');
    client.close();
    assert.equal(reply.code, 252);
  });
});

describe('ETRN', () => {
  test('EHLO advertises ETRN', async () => {
    const { client } = await SmtpClient.connect(port);
    const reply = await client.command('EHLO client.example');
    client.close();
    assert.match(reply.text, /^250-ETRN$|^250 ETRN$/m);
  });

  test('a member domain is flushed with 250', async () => {
    const events: unknown[] = [];
    const listener = new Broker({
      url: environment.env.AMQP_URL as string,
      prefix: environment.amqpPrefix,
      logger,
      connectionName: 'test',
    });
    listener.subscribe(EXCHANGE.control, (content) => {
      events.push(parseControlEvent(content));
    });
    await listener.start();
    try {
      const { client } = await SmtpClient.connect(port);
      await client.command('EHLO primary.member.example');
      const reply = await client.command('ETRN Member.Example');
      client.close();
      assert.equal(reply.text, '250 2.0.0 Queuing for node member.example started');
      for (let i = 0; i < 50 && events.length === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.deepEqual(events, [{ type: 'flush', domain: 'member.example' }]);
    } finally {
      await listener.stop();
    }
  });

  test('a suspended domain may still be flushed', async () => {
    const { client } = await SmtpClient.connect(port);
    await client.command('EHLO primary.suspended.example');
    const reply = await client.command('ETRN suspended.example');
    client.close();
    assert.equal(reply.text, '250 2.0.0 Queuing for node suspended.example started');
  });

  const refusals: { command: string; reply: RegExp }[] = [
    { command: 'ETRN other.example', reply: /^459 4\.7\.1 Node other\.example not allowed/ },
    { command: 'ETRN pending.example', reply: /^459 4\.7\.1 / },
    { command: 'ETRN #queue', reply: /^458 4\.7\.0 / },
    { command: 'ETRN', reply: /^501 5\.5\.4 / },
    { command: 'ETRN not..a..domain', reply: /^501 5\.5\.4 / },
  ];
  for (const { command, reply } of refusals) {
    test(`${command} is refused`, async () => {
      const { client } = await SmtpClient.connect(port);
      await client.command('EHLO client.example');
      const answer = await client.command(command);
      client.close();
      assert.match(answer.text, reply);
    });
  }

  test('ETRN inside a mail transaction gets 503', async () => {
    const client = await openTransaction();
    const answer = await client.command('ETRN member.example');
    client.close();
    assert.match(answer.text, /^503 5\.5\.1 /);
  });
});

/**
 * One RCPT TO in a fresh transaction. `reply` is the code and, where it matters, the enhanced
 * code. `stored` is the recipient address queue-store must hold after DATA, or undefined when
 * RCPT is rejected and nothing may be stored.
 */
interface RelayDialogue {
  rcpt: string;
  smtpUtf8?: boolean;
  reply: string;
  stored?: string;
}

// Member domains: example.org and bücher.example; example.com is an outside domain.
const RELAY_DIALOGUES: RelayDialogue[] = [
  { rcpt: '<victim@example.org>', reply: '250', stored: 'victim@example.org' },
  { rcpt: '<victim@example.com>', reply: '550 5.7.1' },
  // The % hack, UUCP bang paths and @ in the local part, quoted or not.
  { rcpt: '<victim%example.com@example.org>', reply: '550 5.7.1' },
  { rcpt: '<"victim%example.com"@example.org>', reply: '550 5.7.1' },
  { rcpt: '<victim%25example.com@example.org>', reply: '550 5.7.1' },
  { rcpt: '<example.com!victim@example.org>', reply: '550 5.7.1' },
  { rcpt: '<"example.com!victim"@example.org>', reply: '550 5.7.1' },
  { rcpt: '<"victim@example.com"@example.org>', reply: '501 5.1.3' },
  { rcpt: '<"victim\\@example.com"@example.org>', reply: '501 5.1.3' },
  { rcpt: '<victim@example.com@example.org>', reply: '501 5.1.3' },
  { rcpt: '<victim@example.org@example.com>', reply: '501 5.1.3' },
  // Source routes: smtp-server drops the route, and the mailbox after it decides.
  { rcpt: '<@example.org:victim@example.com>', reply: '550 5.7.1' },
  { rcpt: '<@example.org,@example.net:victim@example.com>', reply: '550 5.7.1' },
  { rcpt: '<@example.com:victim@example.org>', reply: '250', stored: 'victim@example.org' },
  // Parameters inside a quoted local part are not DSN parameters.
  { rcpt: '<"user@example.org> NOTIFY=NEVER"@example.com>', reply: '501' },
  { rcpt: '<"user@example.org> ORCPT=rfc822;x"@example.com>', reply: '501 5.1.3' },
  { rcpt: '<"user NOTIFY=NEVER"@example.org>', reply: '501' },
  // Quotes that the local part does not need are dropped; quotes it needs are kept.
  { rcpt: '<"alice"@example.org>', reply: '250', stored: 'alice@example.org' },
  { rcpt: '<"al.ice"@example.org>', reply: '250', stored: 'al.ice@example.org' },
  { rcpt: '<"al\\ice"@example.org>', reply: '250', stored: 'alice@example.org' },
  { rcpt: '<"müller"@example.org>', smtpUtf8: true, reply: '250', stored: 'müller@example.org' },
  { rcpt: '<".alice"@example.org>', reply: '250', stored: '".alice"@example.org' },
  { rcpt: '<"a(b"@example.org>', reply: '250', stored: '"a(b"@example.org' },
  { rcpt: '<"a b"@example.org>', reply: '501' },
  // Address literals and bare addresses.
  { rcpt: '<victim@[127.0.0.1]>', reply: '550 5.7.1' },
  { rcpt: '<victim@[192.0.2.1]>', reply: '550 5.7.1' },
  { rcpt: '<victim@[IPv6:::1]>', reply: '550 5.7.1' },
  { rcpt: '<victim@127.0.0.1>', reply: '501 5.1.3' },
  { rcpt: '<victim@localhost>', reply: '501 5.1.3' },
  // Trailing dots and other domain syntax.
  { rcpt: '<victim@example.org.>', reply: '501 5.1.3' },
  { rcpt: '<victim@example.com.>', reply: '501 5.1.3' },
  { rcpt: '<victim@example.org..>', reply: '501 5.1.3' },
  { rcpt: '<victim@.example.org>', reply: '501 5.1.3' },
  { rcpt: '<victim@example.org%2Eexample.com>', reply: '501 5.1.3' },
  { rcpt: '<victim@example.com.example.org>', reply: '550 5.7.1' },
  { rcpt: '<victim@example.org.example.com>', reply: '550 5.7.1' },
  // Case games.
  { rcpt: '<Victim@EXAMPLE.ORG>', reply: '250', stored: 'Victim@example.org' },
  { rcpt: '<victim@EXAMPLE.COM>', reply: '550 5.7.1' },
  { rcpt: '<VICTIM%EXAMPLE.COM@EXAMPLE.ORG>', reply: '550 5.7.1' },
  // IDN and UTF-8: without SMTPUTF8 the stored address carries the A-label.
  { rcpt: '<kunde@xn--bcher-kva.example>', reply: '250', stored: 'kunde@xn--bcher-kva.example' },
  { rcpt: '<kunde@bücher.example>', reply: '250', stored: 'kunde@xn--bcher-kva.example' },
  {
    rcpt: '<kunde@BÜCHER.example>',
    smtpUtf8: true,
    reply: '250',
    stored: 'kunde@BÜCHER.example',
  },
  { rcpt: '<kunde@bucher.example>', reply: '550 5.7.1' },
  { rcpt: '<kunde@bücher.example.com>', smtpUtf8: true, reply: '550 5.7.1' },
  { rcpt: '<müller@example.org>', reply: '553 5.6.7' },
  { rcpt: '<müller@example.org>', smtpUtf8: true, reply: '250', stored: 'müller@example.org' },
  // smtp-server reads the fullwidth full stop as a dot, so this is victim@example.org.
  { rcpt: '<victim@example．org>', smtpUtf8: true, reply: '250', stored: 'victim@example.org' },
  { rcpt: '<victim@ｅｘａｍｐｌｅ.org>', smtpUtf8: true, reply: '501 5.1.3' },
  { rcpt: '<victim@example.org\u200b>', smtpUtf8: true, reply: '501' },
  // The domainless postmaster names our own, and we have no local mailboxes.
  { rcpt: '<postmaster>', reply: '550 5.1.1' },
  { rcpt: '<Postmaster>', reply: '550 5.1.1' },
  { rcpt: '<postmaster@example.org>', reply: '250', stored: 'postmaster@example.org' },
  { rcpt: '<postmaster@example.com>', reply: '550 5.7.1' },
  // Broken syntax.
  { rcpt: 'victim@example.com', reply: '501' },
  { rcpt: '<>', reply: '501' },
  { rcpt: '<victim@example.com', reply: '501' },
];

describe('relay attempts', () => {
  for (const { rcpt, smtpUtf8, reply, stored } of RELAY_DIALOGUES) {
    const name = `RCPT TO:${rcpt}${smtpUtf8 ? ' with SMTPUTF8' : ''} gets ${reply}`;
    test(name, async () => {
      const before = await countMessages();
      const client = await openTransaction(
        smtpUtf8 ? '<alice@sender.example> SMTPUTF8' : '<alice@sender.example>',
      );
      assertReply(await utf8Command(client, `RCPT TO:${rcpt}`), reply);
      if (stored === undefined) {
        assert.equal((await client.command('DATA')).code, 503, 'DATA without a recipient');
        client.close();
        assert.equal(await countMessages(), before, 'nothing stored');
        return;
      }
      const accepted = await sendData(client, 'Subject: relay test\r\n\r\nbody\r\n');
      client.close();
      assertReply(accepted, '250 2.0.0');
      assert.deepEqual((await storedMessage(accepted)).recipients, [stored]);
      assert.equal(await countMessages(), before + 1, 'exactly one message stored');
    });
  }
});

test('U-label and A-label of one recipient are stored once', async () => {
  const client = await openTransaction();
  assert.equal((await utf8Command(client, 'RCPT TO:<kunde@bücher.example>')).code, 250);
  assert.equal((await client.command('RCPT TO:<kunde@xn--bcher-kva.example>')).code, 250);
  const reply = await sendData(client, 'Subject: twice\r\n\r\nbody\r\n');
  client.close();
  assertReply(reply, '250 2.0.0');
  assert.deepEqual((await storedMessage(reply)).recipients, ['kunde@xn--bcher-kva.example']);
});

test('quoted and unquoted local part are stored once', async () => {
  const client = await openTransaction();
  assert.equal((await client.command('RCPT TO:<"dupr"@example.org>')).code, 250);
  assert.equal((await client.command('RCPT TO:<dupr@example.org>')).code, 250);
  const reply = await sendData(client, 'Subject: twice\r\n\r\nbody\r\n');
  client.close();
  assertReply(reply, '250 2.0.0');
  assert.deepEqual((await storedMessage(reply)).recipients, ['dupr@example.org']);
});

describe('SMTP smuggling', () => {
  // Each ending is one that some server takes for the end of DATA; the real end follows later.
  const endings = ['\n.\n', '\r.\r', '\n.\r\n', '\r\n.\r', '\r.\r\n', '\r\n.\n'];
  for (const ending of endings) {
    test(`${JSON.stringify(ending)} before a second transaction gets 554 5.6.0`, async () => {
      const before = await countMessages();
      const client = await openTransaction();
      assert.equal((await client.command('RCPT TO:<bob@member.example>')).code, 250);
      const reply = await sendData(
        client,
        `Subject: first\r\n\r\nfirst${ending}` +
          'MAIL FROM:<alice@sender.example>\r\nRCPT TO:<bob@member.example>\r\nDATA\r\n' +
          'Subject: smuggled\r\n\r\nsecond\r\n',
      );
      assertReply(reply, '554 5.6.0');
      const noop = await client.command('NOOP');
      client.close();
      assert.equal(noop.text, '250 2.0.0 OK', 'the next reply answers NOOP, not smuggled commands');
      assert.equal(await countMessages(), before, 'nothing stored');
    });
  }

  test('bare LF in the header gets 554 5.6.0', async () => {
    const before = await countMessages();
    const client = await openTransaction();
    assert.equal((await client.command('RCPT TO:<bob@member.example>')).code, 250);
    const reply = await sendData(client, 'Subject: bare\nX-Other: yes\r\n\r\nbody\r\n');
    client.close();
    assertReply(reply, '554 5.6.0');
    assert.equal(await countMessages(), before);
  });

  test('dot-stuffed lines are stored once and unstuffed', async () => {
    const client = await openTransaction();
    assert.equal((await client.command('RCPT TO:<bob@member.example>')).code, 250);
    const reply = await sendData(
      client,
      'Subject: dots\r\n\r\n..\r\n..MAIL FROM:<alice@sender.example>\r\n...\r\n',
    );
    client.close();
    assertReply(reply, '250 2.0.0');
    const { body } = await storedMessage(reply);
    assert.ok(
      body.toString('latin1').endsWith('\r\n\r\n.\r\n.MAIL FROM:<alice@sender.example>\r\n..\r\n'),
    );
  });
});

describe('line length', () => {
  test('a line of 1000 octets with CRLF is stored intact', async () => {
    const line = 'x'.repeat(998);
    const client = await openTransaction();
    assert.equal((await client.command('RCPT TO:<bob@member.example>')).code, 250);
    const reply = await sendData(client, `Subject: long\r\n\r\n${line}\r\n`);
    client.close();
    assertReply(reply, '250 2.0.0');
    assert.ok((await storedMessage(reply)).body.toString('latin1').endsWith(`\r\n${line}\r\n`));
  });

  test('a line of 1001 octets with CRLF gets 554 5.6.0', async () => {
    const before = await countMessages();
    const client = await openTransaction();
    assert.equal((await client.command('RCPT TO:<bob@member.example>')).code, 250);
    const reply = await sendData(client, `Subject: long\r\n\r\n${'x'.repeat(999)}\r\n`);
    client.close();
    assertReply(reply, '554 5.6.0');
    assert.match(reply.text, /line 3 has 1001 octets/);
    assert.equal(await countMessages(), before);
  });

  test('a long header line gets 554 5.6.0', async () => {
    const before = await countMessages();
    const client = await openTransaction();
    assert.equal((await client.command('RCPT TO:<bob@member.example>')).code, 250);
    const reply = await sendData(client, `Subject: ${'y'.repeat(1000)}\r\n\r\nbody\r\n`);
    client.close();
    assertReply(reply, '554 5.6.0');
    assert.equal(await countMessages(), before);
  });
});

describe('Received: hop limit', () => {
  const trace = (count: number) =>
    'Received: from relay.example by hop.example; x\r\n'.repeat(count);

  test('MX_MAX_HOPS - 1 Received: fields are accepted', async () => {
    const client = await openTransaction();
    assert.equal((await client.command('RCPT TO:<bob@member.example>')).code, 250);
    const reply = await sendData(client, `${trace(MAX_HOPS - 1)}Subject: hops\r\n\r\nbody\r\n`);
    client.close();
    assertReply(reply, '250 2.0.0');
    const body = (await storedMessage(reply)).body.toString('latin1');
    const stored = body.split('\r\n\r\n')[0]?.match(/^received:/gim) ?? [];
    assert.equal(stored.length, MAX_HOPS, 'our Received: field brings the count to the limit');
  });

  test('MX_MAX_HOPS Received: fields get 554 5.4.6', async () => {
    const before = await countMessages();
    const client = await openTransaction();
    assert.equal((await client.command('RCPT TO:<bob@member.example>')).code, 250);
    const fields = `${trace(MAX_HOPS - 1)}received : from x by y; z\r\n`;
    const reply = await sendData(client, `${fields}Subject: hops\r\n\r\nbody\r\n`);
    client.close();
    assertReply(reply, '554 5.4.6');
    assert.equal(await countMessages(), before);
  });

  test('Received: lines in the body are not counted', async () => {
    const client = await openTransaction();
    assert.equal((await client.command('RCPT TO:<bob@member.example>')).code, 250);
    const reply = await sendData(client, `Subject: hops\r\n\r\n${trace(MAX_HOPS)}`);
    client.close();
    assertReply(reply, '250 2.0.0');
  });
});

/** One MAIL FROM line after EHLO, and the reply it must get. */
const MAIL_DIALOGUES: { mail: string; reply: string }[] = [
  { mail: '<alice@sender.example> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=a+2Bb', reply: '250' },
  { mail: '<alice@sender.example> SMTPUTF8', reply: '250' },
  { mail: `<alice@sender.example> ENVID=${'e'.repeat(100)}`, reply: '250' },
  { mail: `<alice@sender.example> ENVID=${'e'.repeat(101)}`, reply: '501 5.5.4' },
  { mail: `<alice@sender.example> ENVID=${'+41'.repeat(34)}`, reply: '501 5.5.4' },
  { mail: '<alice@sender.example> ENVID=a+ZZb', reply: '501 5.5.4' },
  { mail: '<alice@sender.example> ENVID=a+2bb', reply: '501 5.5.4' },
  { mail: '<alice@sender.example> ENVID=a+', reply: '501 5.5.4' },
  { mail: '<alice@sender.example> ENVID=a=b', reply: '501 5.5.4' },
  { mail: '<alice@sender.example> FOO=BAR', reply: '555 5.5.4' },
  { mail: '<alice@sender.example> XYZ', reply: '555 5.5.4' },
  { mail: '<alice@sender.example> NOTIFY=NEVER', reply: '555 5.5.4' },
  { mail: '<alice@sender.example> AUTH=<>', reply: '555 5.5.4' },
  // 182 + 1 + 70 characters as sent, 361 octets in the A-label form queue-store would get.
  {
    mail: `<${'s'.repeat(182)}@${'一二三四五六七八九十百千万亿兆京垓秭穰沟.'.repeat(3)}example>`,
    reply: '553 5.1.7',
  },
];

describe('MAIL FROM parameters', () => {
  for (const { mail, reply } of MAIL_DIALOGUES) {
    test(`MAIL FROM:${mail.slice(0, 80)} gets ${reply}`, async () => {
      const { client } = await SmtpClient.connect(port);
      await client.command('EHLO client.example');
      const answer = await utf8Command(client, `MAIL FROM:${mail}`);
      client.close();
      assertReply(answer, reply);
      if (reply.startsWith('555')) {
        assert.match(answer.text, /Unsupported option: [A-Z]+$/);
      }
    });
  }
});

/** One RCPT TO line in a fresh transaction, and the reply it must get. */
const RCPT_DIALOGUES: { rcpt: string; smtpUtf8?: boolean; reply: string }[] = [
  {
    rcpt: '<bob@member.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@member.example',
    reply: '250',
  },
  { rcpt: '<bob@member.example> ORCPT=rfc822;bob+2Bx@member.example', reply: '250' },
  { rcpt: `<bob@member.example> ORCPT=rfc822;${'o'.repeat(493)}`, reply: '250' },
  { rcpt: `<bob@member.example> ORCPT=rfc822;${'o'.repeat(494)}`, reply: '501 5.5.4' },
  { rcpt: '<bob@member.example> ORCPT=rfc822;bob+ZZ@member.example', reply: '501 5.5.4' },
  { rcpt: '<bob@member.example> ORCPT=rfc822;b=b@member.example', reply: '501 5.5.4' },
  { rcpt: '<bob@member.example> ORCPT=rfc822;', reply: '501' },
  { rcpt: '<bob@member.example> ORCPT=rfc822', reply: '501' },
  { rcpt: '<bob@member.example> ORCPT=rfc(822);bob@member.example', reply: '501' },
  { rcpt: '<bob@member.example> ORCPT=rfc822;bøb@member.example', reply: '501 5.5.4' },
  {
    rcpt: '<bob@member.example> ORCPT=utf-8;bøb@member.example',
    smtpUtf8: true,
    reply: '250',
  },
  { rcpt: '<bob@member.example> FOO=BAR', reply: '555 5.5.4' },
  { rcpt: '<bob@member.example> SMTPUTF8', reply: '555 5.5.4' },
  { rcpt: '<bob@member.example> SIZE=100', reply: '555 5.5.4' },
];

describe('RCPT TO parameters', () => {
  for (const { rcpt, smtpUtf8, reply } of RCPT_DIALOGUES) {
    test(`RCPT TO:${rcpt.slice(0, 80)}${smtpUtf8 ? ' with SMTPUTF8' : ''} gets ${reply}`, async () => {
      const client = await openTransaction(
        smtpUtf8 ? '<alice@sender.example> SMTPUTF8' : '<alice@sender.example>',
      );
      const answer = await utf8Command(client, `RCPT TO:${rcpt}`);
      client.close();
      assertReply(answer, reply);
    });
  }
});

test('stored ENVID and ORCPT are decoded xtext', async () => {
  const client = await openTransaction('<alice@sender.example> ENVID=id+2B1');
  const rcpt = 'RCPT TO:<bob@member.example> ORCPT=rfc822;bob+2Bx@member.example';
  assert.equal((await client.command(rcpt)).code, 250);
  const reply = await sendData(client, 'Subject: dsn\r\n\r\nbody\r\n');
  client.close();
  assertReply(reply, '250 2.0.0');
  const queueId = /queued as (\S+)$/.exec(reply.text)?.[1];
  const message = await database.query<{ envid: string }>(
    'SELECT envid FROM messages WHERE id = $1',
    [queueId],
  );
  const recipient = await database.query<{ orcpt: string }>(
    'SELECT orcpt FROM recipients WHERE message_id = $1',
    [queueId],
  );
  assert.equal(message.rows[0]?.envid, 'id+1');
  assert.equal(recipient.rows[0]?.orcpt, 'rfc822;bob+x@member.example');
});

describe('sender domain check', () => {
  const cases: { from: string; reply: string }[] = [
    { from: '<alice@sender.example>', reply: '250' },
    { from: '<alice@SENDER.Example>', reply: '250' },
    { from: '<alice@a-only.example>', reply: '250' },
    { from: '<alice@aaaa-only.example>', reply: '250' },
    { from: '<>', reply: '250' },
    { from: '<alice@[192.0.2.1]>', reply: '550 5.1.8' },
    { from: '<x@[127.0.0.1]>', reply: '550 5.1.8' },
    { from: '<x@[IPv6:::1]>', reply: '550 5.1.8' },
    { from: '<üser@sender.example>', reply: '553 5.6.7' },
    { from: '<üser@sender.example> SMTPUTF8', reply: '250' },
    { from: '<alice@bücher.example>', reply: '450 4.1.8' },
    { from: '<alice@null-mx.example>', reply: '550 5.7.27' },
    { from: '<alice@no-records.example>', reply: '450 4.1.8' },
    { from: '<alice@unknown.example>', reply: '450 4.1.8' },
    { from: '<alice@servfail.example>', reply: '451 4.4.3' },
    { from: '<alice@silent.example>', reply: '451 4.4.3' },
  ];
  for (const { from, reply } of cases) {
    test(`MAIL FROM:${from} gets ${reply}`, async () => {
      const { client } = await SmtpClient.connect(port);
      await client.command('EHLO client.example');
      const answer = await utf8Command(client, `MAIL FROM:${from}`);
      client.close();
      assertReply(answer, reply);
      if (reply === '550 5.1.8') {
        assert.match(answer.text, /sender address literal not accepted/);
      }
    });
  }

  test('domain status is looked up once a minute', async () => {
    dns.setRecords('cached.example', { MX: [{ preference: 10, exchange: 'mx.cached.example' }] });
    for (let i = 0; i < 3; i++) {
      const { client } = await SmtpClient.connect(port);
      await client.command('EHLO client.example');
      assertReply(await client.command('MAIL FROM:<alice@cached.example>'), '250');
      client.close();
    }
    assert.equal(dns.queryCount('cached.example', 'MX'), 1);
  });

  test('failed lookups are not kept', async () => {
    const before = dns.queryCount('servfail.example', 'MX');
    for (let i = 0; i < 2; i++) {
      const { client } = await SmtpClient.connect(port);
      await client.command('EHLO client.example');
      assertReply(await client.command('MAIL FROM:<alice@servfail.example>'), '451 4.4.3');
      client.close();
    }
    assert.ok(dns.queryCount('servfail.example', 'MX') >= before + 2);
  });
});

describe('DNSBL', () => {
  const listing = '1.0.0.127.bl.test';

  test('a listed client gets 554 5.7.1 at RCPT', async () => {
    dns.setRecords(listing, { A: ['127.0.0.2'] });
    try {
      const before = await countMessages();
      const client = await openTransaction();
      const reply = await client.command('RCPT TO:<bob@member.example>');
      assert.equal((await client.command('DATA')).code, 503);
      client.close();
      assertReply(reply, '554 5.7.1');
      assert.match(reply.text, /client host \[127\.0\.0\.1\] blocked using bl\.test$/);
      assert.equal(await countMessages(), before);
    } finally {
      dns.setRecords(listing, undefined);
    }
  });

  test('an answer outside 127.0.0.0/24 is not a listing', async () => {
    dns.setRecords(listing, { A: ['127.255.255.254'] });
    try {
      const client = await openTransaction();
      const reply = await client.command('RCPT TO:<bob@member.example>');
      client.close();
      assertReply(reply, '250');
    } finally {
      dns.setRecords(listing, undefined);
    }
  });

  test('a zone that fails lets the client through', async () => {
    dns.setFailure(listing, 'SERVFAIL');
    try {
      const client = await openTransaction();
      const reply = await client.command('RCPT TO:<bob@member.example>');
      client.close();
      assertReply(reply, '250');
    } finally {
      dns.setFailure(listing, undefined);
    }
  });
});
