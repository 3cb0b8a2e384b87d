import assert from 'node:assert/strict';
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import type { JobMessage } from '@secondary-mx/contracts';
import { DISCONNECT, FakePrimary, startFakePrimary } from '@secondary-mx/testkit';
import type { NextHop } from '../src/next-hop.ts';
import type { RecipientVerdict } from '../src/recipient-verdicts.ts';
import { type JobDelivery, type MessagePart, SmtpDelivery } from '../src/smtp-delivery.ts';
import { recordingLogger, waitFor } from './support.ts';

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

let messageCounter = 0;

/** Returns a message with size 0, which part() replaces with the payload length. */
function makeMessage(overrides: Partial<JobMessage> = {}): JobMessage {
  messageCounter += 1;
  return {
    queueId: `QUEUE${messageCounter}`,
    sender: 'alice@sender.test',
    recipients: [{ id: `r${messageCounter}`, address: 'bob@member.test' }],
    bodyType: '8BITMIME',
    smtpUtf8: false,
    size: 0,
    ...overrides,
  };
}

function part(message: JobMessage, payload = PAYLOAD): MessagePart {
  return { message: { ...message, size: payload.length }, payload };
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
let delivery: SmtpDelivery;
const primaries: FakePrimary[] = [];

async function extraPrimary(
  options: Parameters<typeof startFakePrimary>[0] = {},
): Promise<FakePrimary> {
  const started = await startFakePrimary(options);
  primaries.push(started);
  return started;
}

function createDelivery(messageTimeoutMs = 10_000): SmtpDelivery {
  const options = {
    heloName: HELO_NAME,
    connectTimeoutMs: 2000,
    socketTimeoutMs: 10_000,
    messageTimeoutMs,
  };
  return new SmtpDelivery(options, recordingLogger([]));
}

/** Delivers the parts as one job whose lease ends `leaseMs` from now. */
function deliverJob(parts: MessagePart[], hops: NextHop[], leaseMs = 60_000): Promise<JobDelivery> {
  const startedAt = Date.now();
  const context = {
    leaseId: `lease-${messageCounter}`,
    domain: 'member.test',
    startedAt,
    leaseUntil: startedAt + leaseMs,
  };
  return delivery.deliverJob(context, parts, hops);
}

/** Delivers one message as a job of its own and returns its verdicts. */
async function deliver(
  message: JobMessage,
  hops: NextHop[],
  payload = PAYLOAD,
  leaseMs = 60_000,
): Promise<RecipientVerdict[]> {
  const { outcomes } = await deliverJob([part(message, payload)], hops, leaseMs);
  assert.equal(outcomes.length, 1);
  return outcomes[0]?.verdicts ?? [];
}

/** Returns the verdicts of message `index` of a job. */
function verdictsOf(result: JobDelivery, index: number): RecipientVerdict[] {
  const outcome = result.outcomes[index];
  assert.ok(outcome, `no outcome for message ${index}`);
  return outcome.verdicts;
}

beforeEach(async () => {
  primary = await extraPrimary({ size: 10_000_000 });
  delivery = createDelivery();
});

afterEach(async () => {
  delivery.closeAll();
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
    const message = makeMessage({
      recipients: [
        { id: 'r-ok', address: 'ok@member.test' },
        { id: 'r-busy', address: 'busy@member.test' },
        { id: 'r-nouser', address: 'nouser@member.test' },
      ],
    });
    const verdicts = await deliver(message, [hopTo(primary)]);

    const ok = byAddress(verdicts, 'ok@member.test');
    assert.equal(ok.status, 'delivered');
    assert.equal(ok.recipientId, 'r-ok');
    assert.match(ok.reply, /^250 /);
    assert.equal(ok.enhancedCode, '2.0.0', 'derived from the class when the server gave none');
    assert.equal(ok.remoteMta, PRIMARY_HOST);
    assert.equal(ok.relay, `${PRIMARY_HOST}[127.0.0.1]:${primary.port}`);
    assert.equal(ok.queueId, message.queueId);
    assert.equal(ok.failureKind, undefined);
    assert.equal(ok.remoteDsn, false, 'the primary did not advertise DSN');

    const busy = byAddress(verdicts, 'busy@member.test');
    assert.equal(busy.status, 'deferred');
    assert.equal(busy.reply, '450 4.2.1 Mailbox busy, try later');
    assert.equal(busy.enhancedCode, '4.2.1');
    assert.equal(busy.remoteMta, PRIMARY_HOST);
    assert.equal(busy.failureKind, 'reply');
    assert.equal(busy.remoteDsn, undefined);

    const nouser = byAddress(verdicts, 'nouser@member.test');
    assert.equal(nouser.status, 'failed');
    assert.equal(nouser.reply, '550 5.1.1 No such user here');
    assert.equal(nouser.enhancedCode, '5.1.1');
    assert.equal(nouser.failureKind, undefined);

    assert.equal(primary.messages.length, 1);
    assert.deepEqual(primary.messages[0]?.rcptTo, ['ok@member.test']);
  });

  test('sends the stored bytes unchanged', async () => {
    const verdicts = await deliver(makeMessage(), [hopTo(primary)]);
    assert.equal(verdicts[0]?.status, 'delivered');
    const received = primary.messages[0];
    assert.ok(received);
    assert.equal(received.raw.length, PAYLOAD.length);
    assert.ok(received.raw.equals(PAYLOAD), 'received bytes differ from the payload');
  });

  test('sends lines of 1000 octets with CRLF unchanged', async () => {
    // Lines of the maximum length ingress accepts, one of them starting with a dot to stuff.
    const payload = Buffer.from(
      `X-Long: ${'h'.repeat(990)}\r\nSubject: long lines\r\n\r\n` +
        `${'x'.repeat(998)}\r\n.${'y'.repeat(997)}\r\n`,
      'ascii',
    );
    const verdicts = await deliver(makeMessage({ bodyType: '7BIT' }), [hopTo(primary)], payload);
    assert.equal(verdicts[0]?.status, 'delivered', verdicts[0]?.reply);
    assert.equal(primary.messages.length, 1);
    assert.ok(primary.messages[0]?.raw.equals(payload), 'received bytes differ from the payload');
  });

  test('sends the original envelope and parameters', async () => {
    await deliver(makeMessage({ sender: 'alice@sender.test' }), [hopTo(primary)]);
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
      makeMessage({ bodyType: '7BIT' }),
      [hopTo(primary)],
      Buffer.from('Subject: x\r\n\r\nhello\r\n'),
    );
    assert.equal(primary.messages[0]?.mailParameters.BODY, undefined);
  });

  test('sends BODY=8BITMIME for undeclared 8-bit bytes', async () => {
    const verdicts = await deliver(makeMessage({ bodyType: '7BIT' }), [hopTo(primary)]);
    assert.equal(verdicts[0]?.status, 'delivered', verdicts[0]?.reply);
    assert.equal(primary.messages[0]?.mailParameters.BODY, '8BITMIME');
    assert.ok(primary.messages[0]?.raw.equals(PAYLOAD), 'received bytes differ from the payload');
  });

  test('fails 8-bit mail to a server without 8BITMIME', async () => {
    const sevenBit = await extraPrimary({ hide8BitMime: true });
    for (const bodyType of ['8BITMIME', '7BIT'] as const) {
      const verdicts = await deliver(makeMessage({ bodyType }), [hopTo(sevenBit)]);
      assert.equal(verdicts[0]?.status, 'failed', bodyType);
      assert.equal(verdicts[0]?.enhancedCode, '5.6.3', bodyType);
      assert.match(
        verdicts[0]?.reply ?? '',
        /^554 5\.6\.3 conversion required but not supported: the message contains 8-bit data, and primary\.member\.test does not offer 8BITMIME$/,
        bodyType,
      );
      assert.equal(verdicts[0]?.failureKind, undefined, bodyType);
    }
    assert.equal(sevenBit.messages.length, 0, 'no 8-bit message was sent');
    assert.equal(sevenBit.rejectedMessages.length, 0);
  });

  test('sends 7-bit mail to a server without 8BITMIME', async () => {
    const sevenBit = await extraPrimary({ hide8BitMime: true });
    const payload = Buffer.from('Subject: x\r\n\r\nhello\r\n');
    const verdicts = await deliver(
      makeMessage({ bodyType: '8BITMIME' }),
      [hopTo(sevenBit)],
      payload,
    );
    assert.equal(verdicts[0]?.status, 'delivered', verdicts[0]?.reply);
    assert.equal(sevenBit.messages[0]?.mailParameters.BODY, undefined);
    assert.ok(sevenBit.messages[0]?.raw.equals(payload), 'received bytes differ from the payload');
  });

  test('delivers the null sender as <>', async () => {
    const verdicts = await deliver(makeMessage({ sender: '' }), [hopTo(primary)]);
    assert.equal(verdicts[0]?.status, 'delivered');
    assert.equal(primary.messages[0]?.mailFrom, '');
  });

  test('sends SMTPUTF8 for a UTF-8 header with ASCII addresses', async () => {
    const payload = Buffer.from('Subject: grüße\r\n\r\nbody\r\n', 'utf8');
    const verdicts = await deliver(makeMessage({ smtpUtf8: true }), [hopTo(primary)], payload);
    assert.equal(verdicts[0]?.status, 'delivered');
    assert.equal(primary.messages[0]?.mailParameters.SMTPUTF8, true);
  });

  test('fails SMTPUTF8 mail to a server without it', async () => {
    const plain = await extraPrimary({ hideSmtpUtf8: true });
    const payload = Buffer.from('Subject: grüße\r\n\r\nbody\r\n', 'utf8');
    const verdicts = await deliver(makeMessage({ smtpUtf8: true }), [hopTo(plain)], payload);
    assert.equal(verdicts[0]?.status, 'failed');
    assert.equal(verdicts[0]?.enhancedCode, '5.6.7');
    assert.equal(plain.messages.length, 0);
  });

  test('passes DSN parameters on', async () => {
    const dsn = await extraPrimary({ dsn: true });
    const message = makeMessage({
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
    const verdicts = await deliver(message, [hopTo(dsn)]);
    assert.equal(verdicts[0]?.status, 'delivered');
    assert.equal(verdicts[0]?.remoteDsn, true);
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
    const message = makeMessage({
      recipients: [
        { id: 'r1', address: 'one@member.test' },
        { id: 'r2', address: 'two@member.test' },
      ],
    });
    const verdicts = await deliver(message, [hopTo(primary)]);
    for (const verdict of verdicts) {
      assert.equal(verdict.status, 'failed');
      assert.equal(verdict.reply, '553 5.7.1 Sender rejected');
      assert.equal(verdict.enhancedCode, '5.7.1');
    }
  });

  test('fails all recipients on 5xx after DATA', async () => {
    primary.onData = () => ({ code: 554, message: '5.6.0 Content rejected' });
    const message = makeMessage({
      recipients: [
        { id: 'r1', address: 'one@member.test' },
        { id: 'r2', address: 'two@member.test' },
      ],
    });
    const verdicts = await deliver(message, [hopTo(primary)]);
    assert.equal(verdicts.length, 2);
    for (const verdict of verdicts) {
      assert.equal(verdict.status, 'failed');
      assert.equal(verdict.reply, '554 5.6.0 Content rejected');
      assert.equal(verdict.remoteMta, PRIMARY_HOST);
    }
  });

  test('defers all recipients on 4xx after DATA', async () => {
    primary.onData = () => ({ code: 451, message: 'Try again' });
    const verdicts = await deliver(makeMessage(), [hopTo(primary)]);
    assert.equal(verdicts[0]?.status, 'deferred');
    assert.equal(verdicts[0]?.reply, '451 Try again');
    assert.equal(verdicts[0]?.enhancedCode, '4.0.0');
  });

  test('keeps RCPT verdicts when DATA fails', async () => {
    primary.onRcpt = (address) =>
      address.startsWith('nouser') ? { code: 550, message: '5.1.1 No such user' } : undefined;
    primary.onData = () => ({ code: 452, message: '4.3.1 Disk full' });
    const message = makeMessage({
      recipients: [
        { id: 'r1', address: 'ok@member.test' },
        { id: 'r2', address: 'nouser@member.test' },
      ],
    });
    const verdicts = await deliver(message, [hopTo(primary)]);
    assert.equal(byAddress(verdicts, 'ok@member.test').reply, '452 4.3.1 Disk full');
    assert.equal(byAddress(verdicts, 'ok@member.test').status, 'deferred');
    assert.equal(byAddress(verdicts, 'nouser@member.test').status, 'failed');
  });

  test('defers on a connection lost after DATA', async () => {
    primary.onData = () => DISCONNECT;
    const verdicts = await deliver(makeMessage(), [hopTo(primary)]);
    assert.equal(verdicts[0]?.status, 'deferred');
    assert.equal(verdicts[0]?.enhancedCode, '4.4.2');
    assert.match(verdicts[0]?.reply ?? '', /^451 4\.4\.2 .*primary\.member\.test\[127\.0\.0\.1\]/);
  });

  test('defers all recipients when the connection is refused', async () => {
    const down = await FakePrimary.create();
    const message = makeMessage({
      recipients: [
        { id: 'r1', address: 'one@member.test' },
        { id: 'r2', address: 'two@member.test' },
      ],
    });
    const verdicts = await deliver(message, [hopTo(down)]);
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
      assert.equal(verdict.failureKind, 'connection');
    }
  });

  test('tries the next address and the next hop', async () => {
    const down = await FakePrimary.create();
    // Nothing listens on 127.0.0.2 at the primary's port, because it is bound to 127.0.0.1 only.
    const hops = [
      hopTo(down, ['127.0.0.1'], 'down.member.test'),
      hopTo(primary, ['127.0.0.2', '127.0.0.1']),
    ];
    const verdicts = await deliver(makeMessage(), hops);
    assert.equal(verdicts[0]?.status, 'delivered');
    assert.equal(verdicts[0]?.relay, `${PRIMARY_HOST}[127.0.0.1]:${primary.port}`);
  });

  test('delivers once a down primary is back', async () => {
    const later = await FakePrimary.create();
    primaries.push(later);
    const first = await deliver(makeMessage(), [hopTo(later)]);
    assert.equal(first[0]?.status, 'deferred');
    await later.start();
    const second = await deliver(makeMessage(), [hopTo(later)]);
    assert.equal(second[0]?.status, 'delivered');
    assert.equal(later.messages.length, 1);
  });

  test('defers when the delivery times out', async () => {
    delivery = createDelivery(500);
    primary.onData = () => new Promise(() => undefined);
    const started = Date.now();
    const verdicts = await deliver(makeMessage(), [hopTo(primary)]);
    assert.ok(Date.now() - started < 3000, 'the deadline was not enforced');
    assert.equal(verdicts[0]?.status, 'deferred');
    assert.equal(verdicts[0]?.enhancedCode, '4.4.2');
    assert.match(verdicts[0]?.reply ?? '', /timed out/);
    assert.equal(verdicts[0]?.failureKind, 'connection');
  });

  test('fails a message over the SIZE limit', async () => {
    const small = await extraPrimary({ size: 100 });
    const verdicts = await deliver(makeMessage(), [hopTo(small)]);
    assert.equal(verdicts[0]?.status, 'failed');
    assert.equal(verdicts[0]?.enhancedCode, '5.3.4');
    assert.equal(small.messages.length, 0);
  });
});

describe('one connection per job', () => {
  test('delivers all messages over one session', async () => {
    const payloads = [1, 2, 3].map((n) =>
      Buffer.from(`Subject: message ${n}\r\n\r\nbody ${n}\r\n`),
    );
    const parts = payloads.map((payload, n) =>
      part(
        makeMessage({
          bodyType: '7BIT',
          recipients: [{ id: `r-one-${n}`, address: `user${n}@member.test` }],
        }),
        payload,
      ),
    );
    const result = await deliverJob(parts, [hopTo(primary)]);

    assert.equal(result.outcomes.length, 3);
    result.outcomes.forEach((outcome, n) => {
      assert.equal(outcome.message.queueId, parts[n]?.message.queueId);
      assert.equal(outcome.verdicts[0]?.status, 'delivered', `message ${n}`);
      assert.equal(outcome.verdicts[0]?.queueId, parts[n]?.message.queueId);
    });
    assert.equal(primary.messages.length, 3);
    primary.messages.forEach((received, n) => {
      assert.ok(received.raw.equals(payloads[n] as Buffer), `bytes of message ${n}`);
      assert.deepEqual(received.rcptTo, [`user${n}@member.test`]);
    });
    assert.equal(new Set(primary.messages.map((received) => received.sessionId)).size, 1);
    assert.equal(primary.totalSessions, 1);
    assert.deepEqual(result.relays, [`${PRIMARY_HOST}[127.0.0.1]:${primary.port}`]);
    await waitFor(() => primary.currentSessions === 0, 'the session to close', 1000);
  });

  test('opens a new session for each job', async () => {
    await deliver(makeMessage(), [hopTo(primary)]);
    await deliver(makeMessage(), [hopTo(primary)]);
    assert.equal(primary.messages.length, 2);
    assert.equal(primary.totalSessions, 2);
    await waitFor(() => primary.currentSessions === 0, 'the sessions to close', 1000);
  });

  test('sends RSET after a rejected transaction', async () => {
    // Without RSET the open envelope of the first message would make the server reject the
    // second MAIL FROM as a nested transaction.
    primary.onRcpt = (address) =>
      address.startsWith('nouser') ? { code: 550, message: '5.1.1 No such user' } : undefined;
    const rejected = makeMessage({ recipients: [{ id: 'r-no', address: 'nouser@member.test' }] });
    const accepted = makeMessage({ recipients: [{ id: 'r-yes', address: 'yes@member.test' }] });
    const result = await deliverJob([part(rejected), part(accepted)], [hopTo(primary)]);
    assert.equal(verdictsOf(result, 0)[0]?.status, 'failed');
    assert.equal(verdictsOf(result, 1)[0]?.status, 'delivered');
    assert.equal(primary.totalSessions, 1);
  });

  test('judges recipients across messages', async () => {
    primary.onRcpt = (address) => {
      if (address.startsWith('busy')) {
        return { code: 450, message: '4.2.1 Mailbox busy' };
      }
      return address.startsWith('nouser')
        ? { code: 550, message: '5.1.1 No such user' }
        : undefined;
    };

    const first = makeMessage({
      recipients: [
        { id: 'r-a', address: 'ok@member.test' },
        { id: 'r-b', address: 'busy@member.test' },
      ],
    });
    const second = makeMessage({
      recipients: [
        { id: 'r-c', address: 'nouser@member.test' },
        { id: 'r-d', address: 'ok2@member.test' },
      ],
    });
    const result = await deliverJob([part(first), part(second)], [hopTo(primary)]);

    const all = result.outcomes.flatMap((outcome) => outcome.verdicts);
    assert.equal(byAddress(all, 'ok@member.test').status, 'delivered');
    assert.equal(byAddress(all, 'ok@member.test').queueId, first.queueId);
    assert.equal(byAddress(all, 'busy@member.test').status, 'deferred');
    assert.equal(byAddress(all, 'busy@member.test').failureKind, 'reply');
    assert.equal(byAddress(all, 'nouser@member.test').status, 'failed');
    assert.equal(byAddress(all, 'nouser@member.test').queueId, second.queueId);
    assert.equal(byAddress(all, 'ok2@member.test').status, 'delivered');
    assert.equal(primary.totalSessions, 1);
  });

  test('reconnects once after a lost connection', async () => {
    primary.onData = (received) =>
      received.rcptTo.includes('two@member.test') ? DISCONNECT : undefined;
    const messages = ['one', 'two', 'three'].map((name) =>
      makeMessage({ recipients: [{ id: `r-${name}`, address: `${name}@member.test` }] }),
    );
    const result = await deliverJob(
      messages.map((message) => part(message)),
      [hopTo(primary)],
    );

    assert.equal(verdictsOf(result, 0)[0]?.status, 'delivered');
    const lost = verdictsOf(result, 1)[0];
    assert.equal(lost?.status, 'deferred');
    assert.equal(lost?.enhancedCode, '4.4.2');
    assert.equal(lost?.failureKind, 'connection');
    assert.equal(verdictsOf(result, 2)[0]?.status, 'delivered');
    assert.equal(primary.totalSessions, 2);
    assert.equal(result.relays.length, 2);
    const sessions = primary.messages.map((received) => received.sessionId);
    assert.equal(sessions.length, 2);
    assert.notEqual(sessions[0], sessions[1], 'the third message came over a new session');
    await waitFor(() => primary.currentSessions === 0, 'the sessions to close', 1000);
  });

  test('reconnects to the next hop', async () => {
    const backup = await extraPrimary();
    primary.onData = (received) => {
      if (received.rcptTo.includes('two@member.test')) {
        void primary.stop();
        return DISCONNECT;
      }
      return undefined;
    };
    const messages = ['one', 'two', 'three'].map((name) =>
      makeMessage({ recipients: [{ id: `r-${name}`, address: `${name}@member.test` }] }),
    );
    const hops = [hopTo(primary), hopTo(backup, ['127.0.0.1'], 'backup.member.test')];
    const result = await deliverJob(
      messages.map((message) => part(message)),
      hops,
    );

    assert.equal(verdictsOf(result, 0)[0]?.status, 'delivered');
    assert.equal(verdictsOf(result, 1)[0]?.status, 'deferred');
    const third = verdictsOf(result, 2)[0];
    assert.equal(third?.status, 'delivered');
    assert.equal(third?.remoteMta, 'backup.member.test');
    assert.deepEqual(backup.messages[0]?.rcptTo, ['three@member.test']);
  });

  test('defers the rest when reconnecting fails', async () => {
    primary.onData = (received) => {
      if (received.rcptTo.includes('two@member.test')) {
        void primary.stop();
        return DISCONNECT;
      }
      return undefined;
    };
    const messages = ['one', 'two', 'three', 'four'].map((name) =>
      makeMessage({ recipients: [{ id: `r-${name}`, address: `${name}@member.test` }] }),
    );
    const result = await deliverJob(
      messages.map((message) => part(message)),
      [hopTo(primary)],
    );

    assert.equal(verdictsOf(result, 0)[0]?.status, 'delivered');
    assert.equal(verdictsOf(result, 1)[0]?.failureKind, 'connection');
    for (const index of [2, 3]) {
      const verdict = verdictsOf(result, index)[0];
      assert.equal(verdict?.status, 'deferred', `message ${index}`);
      assert.equal(verdict?.enhancedCode, '4.4.1', `message ${index}`);
      assert.equal(verdict?.failureKind, 'connection', `message ${index}`);
      assert.equal(verdict?.queueId, messages[index]?.queueId);
      assert.match(verdict?.reply ?? '', /ECONNREFUSED/);
    }
    assert.equal(primary.messages.length, 1);
  });

  test('defers the rest after a second loss', async () => {
    primary.onData = (received) =>
      received.rcptTo.includes('one@member.test') ? undefined : DISCONNECT;
    const messages = ['one', 'two', 'three', 'four'].map((name) =>
      makeMessage({ recipients: [{ id: `r-${name}`, address: `${name}@member.test` }] }),
    );
    const result = await deliverJob(
      messages.map((message) => part(message)),
      [hopTo(primary)],
    );

    assert.equal(verdictsOf(result, 0)[0]?.status, 'delivered');
    assert.equal(verdictsOf(result, 1)[0]?.enhancedCode, '4.4.2');
    assert.equal(verdictsOf(result, 2)[0]?.enhancedCode, '4.4.2');
    const rest = verdictsOf(result, 3)[0];
    assert.equal(rest?.status, 'deferred');
    assert.equal(rest?.failureKind, 'connection');
    assert.match(
      rest?.reply ?? '',
      /^451 4\.4\.2 connection to .* was lost again, and a job reconnects only once/,
    );
    assert.equal(primary.totalSessions, 2, 'one reconnect only');
  });

  test('hands back messages the lease cannot fit', async () => {
    delivery = createDelivery(500);
    primary.onData = () => new Promise(() => undefined);
    const first = makeMessage();
    const second = makeMessage();
    const result = await deliverJob([part(first), part(second)], [hopTo(primary)], 700);

    const cut = verdictsOf(result, 0)[0];
    assert.equal(cut?.status, 'deferred');
    assert.match(cut?.reply ?? '', /timed out after \d+ ms/);
    assert.equal(cut?.failureKind, 'connection');
    const late = verdictsOf(result, 1)[0];
    assert.equal(late?.status, 'deferred');
    assert.match(
      late?.reply ?? '',
      /^451 4\.4\.7 not attempted: the lease has \d+ ms left, less than the 500 ms a message may take$/,
    );
    assert.equal(late?.enhancedCode, '4.4.7');
    assert.equal(late?.failureKind, 'notAttempted');
    assert.equal(primary.totalSessions, 1, 'no reconnect for the message handed back');
  });

  test('stops a job before the lease runs short', async () => {
    delivery = createDelivery(1000);
    primary.onData = () => new Promise((resolve) => setTimeout(() => resolve(undefined), 150));
    const messages = Array.from({ length: 12 }, (_, index) =>
      makeMessage({ recipients: [{ id: `r-fit-${index}`, address: `fit${index}@member.test` }] }),
    );
    const result = await deliverJob(
      messages.map((message) => part(message)),
      [hopTo(primary)],
      1500,
    );

    const statuses = result.outcomes.map((outcome) => outcome.verdicts[0]?.failureKind ?? 'ok');
    const firstUntried = statuses.indexOf('notAttempted');
    assert.ok(firstUntried > 0, `some messages delivered first: ${statuses.join(', ')}`);
    assert.deepEqual(
      statuses.slice(0, firstUntried),
      Array(firstUntried).fill('ok'),
      'every message before the first one handed back was delivered',
    );
    assert.deepEqual(
      statuses.slice(firstUntried),
      Array(statuses.length - firstUntried).fill('notAttempted'),
      'every message after it was handed back',
    );
    for (const outcome of result.outcomes.slice(0, firstUntried)) {
      assert.equal(outcome.verdicts[0]?.status, 'delivered');
    }
    assert.equal(primary.messages.length, firstUntried, 'only the delivered ones arrived');
    assert.equal(primary.rejectedMessages.length, 0);
    assert.equal(primary.totalSessions, 1);
    await waitFor(() => primary.currentSessions === 0, 'the session to close', 1000);
  });

  test('runs concurrent jobs on separate sessions', async () => {
    primary.onData = () => new Promise((resolve) => setTimeout(() => resolve(undefined), 200));
    const results = await Promise.all(
      [1, 2, 3].map(() => deliver(makeMessage(), [hopTo(primary)])),
    );
    for (const verdicts of results) {
      assert.equal(verdicts[0]?.status, 'delivered');
    }
    assert.equal(primary.totalSessions, 3);
    assert.equal(primary.maxSessions, 3);
    assert.equal(new Set(primary.messages.map((received) => received.sessionId)).size, 3);
    await waitFor(() => primary.currentSessions === 0, 'the sessions to close', 1000);
  });

  test('closeAll defers the job in flight', async () => {
    primary.onData = () => new Promise((resolve) => setTimeout(() => resolve(undefined), 2000));
    const pending = deliverJob([part(makeMessage()), part(makeMessage())], [hopTo(primary)]);
    await waitFor(() => primary.currentSessions > 0, 'the delivery to start');
    delivery.closeAll();
    const result = await pending;
    assert.equal(verdictsOf(result, 0)[0]?.status, 'deferred');
    const second = verdictsOf(result, 1)[0];
    assert.equal(second?.failureKind, 'connection');
    assert.match(second?.reply ?? '', /stopping/);
    assert.equal(primary.totalSessions, 1);
  });
});
