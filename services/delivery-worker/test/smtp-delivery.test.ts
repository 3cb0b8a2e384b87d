import assert from 'node:assert/strict';
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import type { DeliveryJob } from '@secondary-mx/contracts';
import { DISCONNECT, FakePrimary, startFakePrimary } from '@secondary-mx/testkit';
import { ConnectionPool } from '../src/connection-pool.ts';
import type { NextHop } from '../src/next-hop.ts';
import type { RecipientVerdict } from '../src/recipient-verdicts.ts';
import { SmtpDelivery } from '../src/smtp-delivery.ts';
import { recordingLogger } from './support.ts';

const HELO_NAME = 'mx2.ourmx.test';
const PRIMARY_HOST = 'primary.member.test';

/** 8-bit bytes, CRLF line ends, a line that starts with a dot and one of only a dot. */
const PAYLOAD = Buffer.concat([
  Buffer.from('Received: from client.test by mx2.ourmx.test\r\nSubject: caf', 'ascii'),
  Buffer.from([0xc3, 0xa9]),
  Buffer.from('\r\nContent-Type: text/plain; charset=latin1\r\n\r\nLatin-1 byte: ', 'ascii'),
  Buffer.from([0xe9, 0xff, 0x80]),
  Buffer.from('\r\n.leading dot\r\n.\r\n..two dots\r\nlast line\r\n', 'ascii'),
]);

let jobCounter = 0;

function makeJob(overrides: Partial<DeliveryJob> = {}): DeliveryJob {
  jobCounter += 1;
  return {
    leaseId: `lease-${jobCounter}`,
    leaseUntil: Date.now() + 60_000,
    queueId: `QUEUE${jobCounter}`,
    domain: 'member.test',
    sender: 'alice@sender.test',
    recipients: [{ id: `r${jobCounter}`, address: 'bob@member.test' }],
    bodyType: '8BITMIME',
    smtpUtf8: false,
    primaryHosts: [],
    ...overrides,
  };
}

function hopTo(primary: FakePrimary, addresses = ['127.0.0.1'], host = PRIMARY_HOST): NextHop {
  return { host, port: primary.port, addresses };
}

function byAddress(verdicts: RecipientVerdict[], address: string): RecipientVerdict {
  const verdict = verdicts.find((entry) => entry.address === address);
  assert.ok(verdict, `no verdict for ${address}`);
  return verdict;
}

let primary: FakePrimary;
let pool: ConnectionPool;
let delivery: SmtpDelivery;
const primaries: FakePrimary[] = [];

async function extraPrimary(
  options: Parameters<typeof startFakePrimary>[0] = {},
): Promise<FakePrimary> {
  const started = await startFakePrimary(options);
  primaries.push(started);
  return started;
}

function createDelivery(sessions: ConnectionPool): SmtpDelivery {
  const options = { heloName: HELO_NAME, connectTimeoutMs: 2000, socketTimeoutMs: 10_000 };
  return new SmtpDelivery(sessions, options, recordingLogger([]));
}

function deliver(job: DeliveryJob, hops: NextHop[], payload = PAYLOAD, timeoutMs = 10_000) {
  return delivery.deliver(job, payload, hops, Date.now() + timeoutMs);
}

beforeEach(async () => {
  primary = await extraPrimary({ size: 10_000_000 });
  pool = new ConnectionPool({ idleTimeoutMs: 5000, maxTransactions: 100 });
  delivery = createDelivery(pool);
});

afterEach(async () => {
  await pool.closeAll();
  await Promise.all(primaries.splice(0).map((entry) => entry.stop()));
});

after(() => {
  assert.equal(primaries.length, 0);
});

describe('SMTP delivery', () => {
  test('judges each recipient by its reply', async () => {
    primary.onRcpt = (address) => {
      if (address.startsWith('busy')) {
        return { code: 450, message: '4.2.1 Mailbox busy, try later' };
      }
      if (address.startsWith('nouser')) {
        return { code: 550, message: '5.1.1 No such user here' };
      }
      return undefined;
    };
    const job = makeJob({
      recipients: [
        { id: 'r-ok', address: 'ok@member.test' },
        { id: 'r-busy', address: 'busy@member.test' },
        { id: 'r-nouser', address: 'nouser@member.test' },
      ],
    });
    const verdicts = await deliver(job, [hopTo(primary)]);

    const ok = byAddress(verdicts, 'ok@member.test');
    assert.equal(ok.status, 'delivered');
    assert.equal(ok.recipientId, 'r-ok');
    assert.match(ok.reply, /^250 /);
    assert.equal(ok.enhancedCode, '2.0.0', 'derived from the class when the server gave none');
    assert.equal(ok.remoteMta, PRIMARY_HOST);
    assert.equal(ok.relay, `${PRIMARY_HOST}[127.0.0.1]:${primary.port}`);

    const busy = byAddress(verdicts, 'busy@member.test');
    assert.equal(busy.status, 'deferred');
    assert.equal(busy.reply, '450 4.2.1 Mailbox busy, try later');
    assert.equal(busy.enhancedCode, '4.2.1');
    assert.equal(busy.remoteMta, PRIMARY_HOST);

    const nouser = byAddress(verdicts, 'nouser@member.test');
    assert.equal(nouser.status, 'failed');
    assert.equal(nouser.reply, '550 5.1.1 No such user here');
    assert.equal(nouser.enhancedCode, '5.1.1');

    assert.equal(primary.messages.length, 1);
    assert.deepEqual(primary.messages[0]?.rcptTo, ['ok@member.test']);
  });

  test('sends the stored bytes unchanged', async () => {
    const verdicts = await deliver(makeJob(), [hopTo(primary)]);
    assert.equal(verdicts[0]?.status, 'delivered');
    const received = primary.messages[0];
    assert.ok(received);
    assert.equal(received.raw.length, PAYLOAD.length);
    assert.ok(received.raw.equals(PAYLOAD), 'received bytes differ from the payload');
  });

  test('sends the original envelope and parameters', async () => {
    await deliver(makeJob({ sender: 'alice@sender.test' }), [hopTo(primary)]);
    const received = primary.messages[0];
    assert.ok(received);
    assert.equal(received.heloName, HELO_NAME);
    assert.equal(received.mailFrom, 'alice@sender.test');
    assert.equal(received.mailParameters.BODY, '8BITMIME');
    assert.equal(received.mailParameters.SIZE, String(PAYLOAD.length));
    assert.equal(received.mailParameters.SMTPUTF8, undefined);
  });

  test('omits BODY for a 7-bit message', async () => {
    await deliver(
      makeJob({ bodyType: '7BIT' }),
      [hopTo(primary)],
      Buffer.from('Subject: x\r\n\r\nhello\r\n'),
    );
    assert.equal(primary.messages[0]?.mailParameters.BODY, undefined);
  });

  test('delivers the null sender as <>', async () => {
    const verdicts = await deliver(makeJob({ sender: '' }), [hopTo(primary)]);
    assert.equal(verdicts[0]?.status, 'delivered');
    assert.equal(primary.messages[0]?.mailFrom, '');
  });

  test('sends SMTPUTF8 for a UTF-8 header with ASCII addresses', async () => {
    const payload = Buffer.from('Subject: grüße\r\n\r\nbody\r\n', 'utf8');
    const verdicts = await deliver(makeJob({ smtpUtf8: true }), [hopTo(primary)], payload);
    assert.equal(verdicts[0]?.status, 'delivered');
    assert.equal(primary.messages[0]?.mailParameters.SMTPUTF8, true);
  });

  test('fails SMTPUTF8 mail to a server without it', async () => {
    const plain = await extraPrimary({ hideSmtpUtf8: true });
    const payload = Buffer.from('Subject: grüße\r\n\r\nbody\r\n', 'utf8');
    const verdicts = await deliver(makeJob({ smtpUtf8: true }), [hopTo(plain)], payload);
    assert.equal(verdicts[0]?.status, 'failed');
    assert.equal(verdicts[0]?.enhancedCode, '5.6.7');
    assert.equal(plain.messages.length, 0);
  });

  test('passes DSN parameters on', async () => {
    const dsn = await extraPrimary({ dsn: true });
    const job = makeJob({
      ret: 'HDRS',
      envid: 'env+id=1',
      recipients: [
        {
          id: 'r-dsn',
          address: 'bob@member.test',
          notify: ['FAILURE', 'DELAY'],
          orcpt: 'rfc822;Bob+41@Member.test',
        },
      ],
    });
    await deliver(job, [hopTo(dsn)]);
    const received = dsn.messages[0];
    assert.ok(received);
    assert.equal(received.mailParameters.RET, 'HDRS');
    // smtp-server decodes xtext, so getting the original values back shows they were encoded:
    // an unencoded `+41` would arrive as `A`.
    assert.equal(received.mailParameters.ENVID, 'env+id=1');
    assert.equal(received.recipients[0]?.parameters.NOTIFY, 'FAILURE,DELAY');
    assert.equal(received.recipients[0]?.parameters.ORCPT, 'rfc822;Bob+41@Member.test');
  });

  test('applies the MAIL FROM reply to all recipients', async () => {
    primary.onMail = () => ({ code: 553, message: '5.7.1 Sender rejected' });
    const job = makeJob({
      recipients: [
        { id: 'r1', address: 'one@member.test' },
        { id: 'r2', address: 'two@member.test' },
      ],
    });
    const verdicts = await deliver(job, [hopTo(primary)]);
    for (const verdict of verdicts) {
      assert.equal(verdict.status, 'failed');
      assert.equal(verdict.reply, '553 5.7.1 Sender rejected');
      assert.equal(verdict.enhancedCode, '5.7.1');
    }
  });

  test('fails all recipients on 5xx after DATA', async () => {
    primary.onData = () => ({ code: 554, message: '5.6.0 Content rejected' });
    const job = makeJob({
      recipients: [
        { id: 'r1', address: 'one@member.test' },
        { id: 'r2', address: 'two@member.test' },
      ],
    });
    const verdicts = await deliver(job, [hopTo(primary)]);
    assert.equal(verdicts.length, 2);
    for (const verdict of verdicts) {
      assert.equal(verdict.status, 'failed');
      assert.equal(verdict.reply, '554 5.6.0 Content rejected');
      assert.equal(verdict.remoteMta, PRIMARY_HOST);
    }
  });

  test('defers all recipients on 4xx after DATA', async () => {
    primary.onData = () => ({ code: 451, message: 'Try again' });
    const verdicts = await deliver(makeJob(), [hopTo(primary)]);
    assert.equal(verdicts[0]?.status, 'deferred');
    assert.equal(verdicts[0]?.reply, '451 Try again');
    assert.equal(verdicts[0]?.enhancedCode, '4.0.0');
  });

  test('keeps RCPT verdicts when DATA fails', async () => {
    primary.onRcpt = (address) =>
      address.startsWith('nouser') ? { code: 550, message: '5.1.1 No such user' } : undefined;
    primary.onData = () => ({ code: 452, message: '4.3.1 Disk full' });
    const job = makeJob({
      recipients: [
        { id: 'r1', address: 'ok@member.test' },
        { id: 'r2', address: 'nouser@member.test' },
      ],
    });
    const verdicts = await deliver(job, [hopTo(primary)]);
    assert.equal(byAddress(verdicts, 'ok@member.test').reply, '452 4.3.1 Disk full');
    assert.equal(byAddress(verdicts, 'ok@member.test').status, 'deferred');
    assert.equal(byAddress(verdicts, 'nouser@member.test').status, 'failed');
  });

  test('defers on a connection lost after DATA', async () => {
    primary.onData = () => DISCONNECT;
    const verdicts = await deliver(makeJob(), [hopTo(primary)]);
    assert.equal(verdicts[0]?.status, 'deferred');
    assert.equal(verdicts[0]?.enhancedCode, '4.4.2');
    assert.match(verdicts[0]?.reply ?? '', /^451 4\.4\.2 .*primary\.member\.test\[127\.0\.0\.1\]/);
  });

  test('defers all recipients when the connection is refused', async () => {
    const down = await FakePrimary.create();
    const job = makeJob({
      recipients: [
        { id: 'r1', address: 'one@member.test' },
        { id: 'r2', address: 'two@member.test' },
      ],
    });
    const verdicts = await deliver(job, [hopTo(down)]);
    assert.equal(verdicts.length, 2);
    for (const verdict of verdicts) {
      assert.equal(verdict.status, 'deferred');
      assert.equal(verdict.enhancedCode, '4.4.1');
      assert.match(
        verdict.reply,
        new RegExp(`^451 4\\.4\\.1 .*primary\\.member\\.test\\[127\\.0\\.0\\.1\\]:${down.port}`),
      );
      assert.match(verdict.reply, /ECONNREFUSED/);
      assert.equal(verdict.remoteMta, undefined);
    }
  });

  test('tries the next address and the next hop', async () => {
    const down = await FakePrimary.create();
    // Nothing listens on 127.0.0.2 at the primary's port, because it is bound to 127.0.0.1 only.
    const hops = [
      hopTo(down, ['127.0.0.1'], 'down.member.test'),
      hopTo(primary, ['127.0.0.2', '127.0.0.1']),
    ];
    const verdicts = await deliver(makeJob(), hops);
    assert.equal(verdicts[0]?.status, 'delivered');
    assert.equal(verdicts[0]?.relay, `${PRIMARY_HOST}[127.0.0.1]:${primary.port}`);
  });

  test('delivers once a down primary is back', async () => {
    const later = await FakePrimary.create();
    primaries.push(later);
    const first = await deliver(makeJob(), [hopTo(later)]);
    assert.equal(first[0]?.status, 'deferred');
    await later.start();
    const second = await deliver(makeJob(), [hopTo(later)]);
    assert.equal(second[0]?.status, 'delivered');
    assert.equal(later.messages.length, 1);
  });

  test('defers when the delivery times out', async () => {
    primary.onData = () => new Promise(() => undefined);
    const started = Date.now();
    const verdicts = await deliver(makeJob(), [hopTo(primary)], PAYLOAD, 500);
    assert.ok(Date.now() - started < 3000, 'the deadline was not enforced');
    assert.equal(verdicts[0]?.status, 'deferred');
    assert.equal(verdicts[0]?.enhancedCode, '4.4.2');
    assert.match(verdicts[0]?.reply ?? '', /timed out/);
  });

  test('fails a message over the SIZE limit', async () => {
    const small = await extraPrimary({ size: 100 });
    const verdicts = await deliver(makeJob(), [hopTo(small)]);
    assert.equal(verdicts[0]?.status, 'failed');
    assert.equal(verdicts[0]?.enhancedCode, '5.3.4');
    assert.equal(small.messages.length, 0);
  });
});

describe('connection reuse', () => {
  test('two messages share one connection', async () => {
    await deliver(makeJob(), [hopTo(primary)]);
    await deliver(makeJob(), [hopTo(primary)]);
    assert.equal(primary.messages.length, 2);
    assert.equal(primary.totalSessions, 1);
    assert.equal(primary.messages[0]?.sessionId, primary.messages[1]?.sessionId);
  });

  test('reuses after a rejected transaction', async () => {
    primary.onMail = (sender) =>
      sender === 'spam@sender.test' ? { code: 550, message: 'No' } : undefined;
    await deliver(makeJob({ sender: 'spam@sender.test' }), [hopTo(primary)]);
    const verdicts = await deliver(makeJob(), [hopTo(primary)]);
    assert.equal(verdicts[0]?.status, 'delivered');
    assert.equal(primary.totalSessions, 1);
  });

  test('concurrent messages use separate connections', async () => {
    primary.onData = () => new Promise((resolve) => setTimeout(() => resolve(undefined), 200));
    const verdicts = await Promise.all([1, 2, 3].map(() => deliver(makeJob(), [hopTo(primary)])));
    for (const result of verdicts) {
      assert.equal(result[0]?.status, 'delivered');
    }
    assert.equal(primary.totalSessions, 3);
    assert.equal(primary.maxSessions, 3);
    assert.equal(new Set(primary.messages.map((message) => message.sessionId)).size, 3);
    assert.equal(pool.idleCount, 3);
  });

  test('reconnects after the primary restarted', async () => {
    await deliver(makeJob(), [hopTo(primary)]);
    await primary.stop();
    await primary.start();
    const verdicts = await deliver(makeJob(), [hopTo(primary)]);
    assert.equal(verdicts[0]?.status, 'delivered');
    assert.equal(primary.totalSessions, 2);
  });

  test('closes idle connections after the idle timeout', async () => {
    const quickPool = new ConnectionPool({ idleTimeoutMs: 100, maxTransactions: 100 });
    const quick = createDelivery(quickPool);
    await quick.deliver(makeJob(), PAYLOAD, [hopTo(primary)], Date.now() + 10_000);
    assert.equal(quickPool.idleCount, 1);
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(quickPool.idleCount, 0);
    assert.equal(primary.currentSessions, 0);
  });

  test('closes a connection after its transaction limit', async () => {
    const limitedPool = new ConnectionPool({ idleTimeoutMs: 5000, maxTransactions: 2 });
    const limited = createDelivery(limitedPool);
    for (let i = 0; i < 3; i++) {
      await limited.deliver(makeJob(), PAYLOAD, [hopTo(primary)], Date.now() + 10_000);
    }
    await limitedPool.closeAll();
    assert.equal(primary.messages.length, 3);
    assert.equal(primary.totalSessions, 2);
  });
});
