import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Broker } from '@secondary-mx/amqp';
import { loadSettings } from '@secondary-mx/config';
import { EXCHANGE, parseControlEvent } from '@secondary-mx/contracts';
import { createLogger } from '@secondary-mx/logger';
import { freePort, SmtpClient, testEnvironment } from '@secondary-mx/testkit';
import pg from 'pg';
import { startQueueStore } from '../../queue-store/src/service.ts';
import { QUEUE_STORE_SETTINGS } from '../../queue-store/src/settings.ts';
import { startIngress } from '../src/service.ts';
import { INGRESS_SETTINGS } from '../src/settings.ts';

const environment = testEnvironment('ingress');
const logger = createLogger('test', process.env.TEST_LOG_LEVEL ?? 'silent');
let port: number;
let database: pg.Client;
let stopAll: () => Promise<void>;

async function countMessages(): Promise<number> {
  const result = await database.query<{ count: string }>('SELECT count(*) FROM messages');
  return Number(result.rows[0]?.count);
}

/** Opens a session up to an accepted MAIL FROM. */
async function openTransaction(mailFrom = '<alice@sender.example>') {
  const { client } = await SmtpClient.connect(port);
  assert.equal((await client.command('EHLO client.example')).code, 250);
  assert.equal((await client.command(`MAIL FROM:${mailFrom}`)).code, 250);
  return client;
}

before(async () => {
  port = await freePort();
  const env = {
    ...environment.env,
    MX_HOSTNAME: 'mx2.example.net',
    MX_SMTP_LISTEN: `127.0.0.1:${port}`,
    MX_MAX_MESSAGE_SIZE: '10000',
    MX_SPOOL_TIMEOUT: '3s',
    MX_GREYLIST_TIMEOUT: '200ms',
    MX_SCHEDULER_INTERVAL: '60s',
    // No DNS server answers here, so reverse lookups fail fast instead of leaving the machine.
    DNS_SERVERS: '127.0.0.1:9',
  };
  const queueStore = await startQueueStore(loadSettings(QUEUE_STORE_SETTINGS, env), logger);
  database = new pg.Client({ connectionString: environment.database.url });
  await database.connect();
  await database.query(
    `INSERT INTO domains (name, member_number, state) VALUES
       ('member.example', '1001', 'approved'), ('pending.example', '1002', 'pending')`,
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
  await environment.database.drop();
});

describe('RCPT TO relay check', () => {
  const cases: { rcpt: string; code: number; enhanced?: string }[] = [
    { rcpt: '<bob@member.example>', code: 250 },
    { rcpt: '<Bob@MEMBER.Example>', code: 250 },
    { rcpt: '<bob@member.example.>', code: 501 },
    { rcpt: '<bob@other.example>', code: 550, enhanced: '5.7.1' },
    { rcpt: '<bob@pending.example>', code: 550, enhanced: '5.7.1' },
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
