/**
 * The membership lifecycle across all five services as separate processes. A domain is
 * requested and approved, then suspended while mail for it waits: ingress rejects new mail and
 * the waiting mail is still delivered. It is approved again and removed with its waiting mail
 * bounced.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  FakePrimary,
  SmtpClient,
  type SmtpReply,
  type Suite,
  startDnsServer,
  startSuite,
  type TestDnsServer,
} from '@secondary-mx/testkit';

const DOMAIN = 'member.example';
let suite: Suite;
let dns: TestDnsServer;
let primary: FakePrimary;

before(async () => {
  primary = await FakePrimary.create();
  dns = await startDnsServer({
    [DOMAIN]: {
      MX: [
        { preference: 10, exchange: 'primary.member.example' },
        { preference: 200, exchange: 'mx2.example.net' },
      ],
    },
    'primary.member.example': { A: ['127.0.0.1'] },
    'mx2.example.net': { A: ['127.0.0.1'] },
    // DSNs to the sender go to the same fake server, found through this MX.
    'sender.example': { MX: [{ preference: 10, exchange: 'mx.sender.example' }] },
    'mx.sender.example': { A: ['127.0.0.1'] },
  });
  suite = await startSuite({
    env: {
      DNS_SERVERS: dns.server,
      MX_SELF_NAMES: 'mx2.example.net',
      MX_DELIVERY_PORT: String(primary.port),
      MX_RETRY_MIN: '1s',
      MX_RETRY_MAX: '2s',
      MX_PROBE_INTERVAL_MIN: '500ms',
      MX_PROBE_INTERVAL_MAX: '1s',
      MX_SCHEDULER_INTERVAL: '200ms',
      MX_DOMAIN_REFRESH: '1m',
      MX_CONNECT_TIMEOUT: '1s',
      MX_SMTP_CHECK_TIMEOUT: '1s',
      MX_DNS_TIMEOUT: '1s',
    },
  });
});

after(async () => {
  await suite?.stop();
  await primary?.stop();
  await dns?.close();
});

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) {
      return value;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${suite.logs()}`);
}

/** Sends one message to bob@member.example; returns the RCPT reply and, if accepted, the queue id. */
async function send(subject: string): Promise<{ rcpt: SmtpReply; queueId?: string }> {
  const { client } = await SmtpClient.connect(suite.smtpPort);
  try {
    await client.command('EHLO client.sender.example');
    const mail = await client.command('MAIL FROM:<zoe@sender.example>');
    assert.equal(mail.code, 250, mail.text);
    const rcpt = await client.command(`RCPT TO:<bob@${DOMAIN}>`);
    if (rcpt.code !== 250) {
      return { rcpt };
    }
    assert.equal((await client.command('DATA')).code, 354);
    client.write(`Subject: ${subject}\r\n\r\nbody\r\n.\r\n`);
    const data = await client.read();
    assert.equal(data.code, 250, data.text);
    const queueId = /queued as ([0-9A-Z]{20})/.exec(data.text)?.[1];
    return { rcpt, ...(queueId ? { queueId } : {}) };
  } finally {
    client.close();
  }
}

/** Returns the RCPT reply for bob@member.example without sending a message. */
async function rcptReply(): Promise<SmtpReply> {
  const { client } = await SmtpClient.connect(suite.smtpPort);
  try {
    await client.command('EHLO client.sender.example');
    await client.command('MAIL FROM:<zoe@sender.example>');
    return await client.command(`RCPT TO:<bob@${DOMAIN}>`);
  } finally {
    client.close();
  }
}

/** Waits until the message's recipient is in the state; returns its last reply. */
async function waitForState(queueId: string, state: string): Promise<string | null> {
  return until(`message ${queueId} to reach ${state}`, async () => {
    const { body } = await suite.api('GET', `/api/messages?domain=${DOMAIN}`);
    const message = body.messages?.find((entry: { id: string }) => entry.id === queueId);
    const recipient = message?.recipients?.[0];
    return recipient?.state === state ? (recipient.lastReply ?? null) : undefined;
  });
}

async function memberApi(token: string, method: string, path: string, body?: unknown) {
  const response = await fetch(`${suite.adminUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

test('a domain is approved, suspended and removed', { timeout: 90_000 }, async () => {
  const requested = await suite.api('POST', '/api/domains', {
    domain: DOMAIN,
    memberNumber: '1001',
    contact: 'postmaster@member.example',
  });
  assert.equal(requested.status, 201, JSON.stringify(requested.body));

  const approved = await suite.api('POST', `/api/domains/${DOMAIN}/approve`, {
    reason: 'member in good standing',
  });
  assert.equal(approved.status, 200, JSON.stringify(approved.body));
  assert.equal(approved.body.dnsRecord, '@ MX 200 mx2.example.net.');
  const memberToken = approved.body.memberToken.token as string;

  // The member turns greylisting off for its own domain, so the test need not wait it out.
  const patched = await memberApi(memberToken, 'PATCH', `/api/domains/${DOMAIN}`, {
    greylist: false,
  });
  assert.equal(patched.status, 200, JSON.stringify(patched.body));

  // The primary is down, so dns-check reports it and accepted mail waits.
  const downCheck = await memberApi(memberToken, 'GET', `/api/domains/${DOMAIN}/dns-check`);
  assert.equal(downCheck.status, 200, JSON.stringify(downCheck.body));
  assert.equal(downCheck.body.listed, true);
  assert.equal(downCheck.body.preferenceOk, true);
  assert.equal(downCheck.body.primary.smtp, 'no answer');
  assert.equal(downCheck.body.ok, false);

  const first = await until('ingress to relay the approved domain', async () => {
    const sent = await send('first');
    return sent.rcpt.code === 250 ? sent : undefined;
  });
  assert.ok(first.queueId);
  await waitForState(first.queueId, 'deferred');

  const suspended = await suite.api('POST', `/api/domains/${DOMAIN}/suspend`, {
    reason: 'fees unpaid',
  });
  assert.equal(suspended.status, 200, JSON.stringify(suspended.body));
  assert.equal(suspended.body.state, 'suspended');

  const rejected = await until('ingress to reject the suspended domain', async () => {
    const reply = await rcptReply();
    return reply.code === 250 ? undefined : reply;
  });
  assert.equal(
    rejected.text,
    `450 4.7.1 <bob@${DOMAIN}>: relaying for ${DOMAIN} is suspended at this backup MX, deliver to the domain's primary MX`,
  );

  // ETRN from the primary still works for a suspended domain.
  const { client } = await SmtpClient.connect(suite.smtpPort);
  await client.command('EHLO primary.member.example');
  const etrn = await client.command(`ETRN ${DOMAIN}`);
  client.close();
  assert.equal(etrn.text, `250 2.0.0 Queuing for node ${DOMAIN} started`);

  // The waiting mail is still delivered once the primary is up.
  await primary.start();
  await primary.waitForMessages(1, 15_000);
  assert.match(primary.messages[0]?.raw.toString('latin1') ?? '', /^Subject: first$/m);
  await waitForState(first.queueId, 'delivered');

  const upCheck = await memberApi(memberToken, 'GET', `/api/domains/${DOMAIN}/dns-check`);
  assert.equal(upCheck.body.ok, true, JSON.stringify(upCheck.body.problems));
  assert.equal(upCheck.body.primary.smtp, 'answers');

  const reapproved = await suite.api('POST', `/api/domains/${DOMAIN}/approve`);
  assert.equal(reapproved.status, 200, JSON.stringify(reapproved.body));
  assert.equal(reapproved.body.memberToken, null);

  await primary.stop();
  const second = await until('ingress to relay the domain again', async () => {
    const sent = await send('second');
    return sent.rcpt.code === 250 ? sent : undefined;
  });
  assert.ok(second.queueId);
  await waitForState(second.queueId, 'deferred');

  const refused = await suite.api('DELETE', `/api/domains/${DOMAIN}`);
  assert.equal(refused.status, 409, JSON.stringify(refused.body));
  assert.match(refused.body.message, /1 recipients of member\.example are not delivered yet/);

  // The recipient stays deferred while probes watch the primary, so no attempt holds it now.
  const removed = await suite.api(
    'DELETE',
    `/api/domains/${DOMAIN}?waiting=bounce&reason=left%20the%20association`,
  );
  assert.equal(removed.status, 200, JSON.stringify(removed.body));
  assert.deepEqual(removed.body, { domain: DOMAIN, removed: true, bounced: 1, dropped: 0 });

  // The DSN goes to the sender's MX, played by the same fake server.
  await primary.start();
  await primary.waitForMessages(2, 15_000);
  const dsn = primary.messages[1];
  const received = primary.messages.map((message) => ({
    mailFrom: message.mailFrom,
    rcptTo: message.rcptTo,
    subject: /^Subject: (.*)$/m.exec(message.raw.toString('latin1'))?.[1],
  }));
  assert.equal(dsn?.mailFrom, '', JSON.stringify(received));
  assert.deepEqual(dsn?.rcptTo, ['zoe@sender.example']);
  const dsnText = dsn?.raw.toString('latin1') ?? '';
  assert.match(dsnText, /^Status: 5\.0\.0$/m);
  assert.match(dsnText, /member\.example was removed from this backup MX/);

  const history = await suite.api('GET', `/api/domains/${DOMAIN}/events`);
  assert.equal(history.status, 200);
  assert.deepEqual(
    history.body.events.map((event: { action: string; toState: string; reason: string }) => [
      event.action,
      event.toState,
      event.reason,
    ]),
    [
      ['request', 'pending', null],
      ['approve', 'approved', 'member in good standing'],
      // The member's PATCH of greylisting.
      ['change', 'approved', null],
      ['suspend', 'suspended', 'fees unpaid'],
      ['approve', 'approved', null],
      ['remove', 'removed', 'left the association'],
    ],
  );
  assert.equal((await memberApi(memberToken, 'GET', `/api/domains/${DOMAIN}`)).status, 401);

  const denied = await until('ingress to drop the removed domain', async () => {
    const reply = await rcptReply();
    return reply.code === 550 ? reply : undefined;
  });
  assert.match(denied.text, /^550 5\.7\.1 .*relaying denied/);
});
