/**
 * The main job as a mail administrator sees it, across all five services as separate
 * processes: a member domain is requested and approved, its primary is down, a sender is
 * greylisted then accepted, and the primary gets the message as soon as it comes up.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  type FakePrimary,
  FakePrimary as Primary,
  type Suite,
  startDnsServer,
  startSuite,
  type TestDnsServer,
  writeTestCertificate,
} from '@secondary-mx/testkit';
import SMTPConnection from 'nodemailer/lib/smtp-connection';

const GREYLIST_DELAY_S = 2;
let suite: Suite;
let dns: TestDnsServer;
let certificateDirectory: string;
let primary: FakePrimary;

/**
 * A multipart message with UTF-8 headers (RFC 2047 encoded words), an 8-bit text part with a
 * line holding a lone dot, and a binary attachment.
 */
function composeMessage(): Buffer {
  const attachment = Buffer.from([0, 1, 2, 254, 255, 13, 10, 46, 13, 10]).toString('base64');
  const lines = [
    'From: =?UTF-8?Q?Zo=C3=AB_Sender?= <zoe@sender.example>',
    'To: Bob <bob@member.example>, carol@member.example',
    'Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG46IHLDqXN1bcOpIGF0dGFjaGVk?=',
    'Date: Fri, 04 Dec 2026 09:00:00 +0100',
    'Message-ID: <e2e-1@sender.example>',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    'Hallo Bob,',
    'hier ist der Lebenslauf, mit Umlauten: äöü ß.',
    '.',
    '..and a line that starts with two dots.',
    '--b1',
    'Content-Type: application/octet-stream; name="=?UTF-8?Q?r=C3=A9sum=C3=A9.bin?="',
    "Content-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.bin",
    'Content-Transfer-Encoding: base64',
    '',
    attachment,
    '--b1--',
    '',
  ];
  return Buffer.from(lines.join('\r\n'), 'utf8');
}

/** Sends one transaction with nodemailer's SMTP client; resolves with the reply or the error. */
async function send(
  message: Buffer,
): Promise<{ response?: string; error?: Error & { responseCode?: number } }> {
  // Like a sending MTA, the client takes STARTTLS without verifying the certificate.
  const connection = new SMTPConnection({
    host: '127.0.0.1',
    port: suite.smtpPort,
    name: 'client.sender.example',
    tls: { rejectUnauthorized: false },
  });
  await new Promise<void>((resolve, reject) => {
    connection.once('error', reject);
    connection.connect(() => resolve());
  });
  try {
    return await new Promise((resolve) => {
      connection.send(
        {
          from: 'zoe@sender.example',
          to: ['bob@member.example', 'carol@member.example'],
          use8BitMime: true,
          size: message.length,
        } as never,
        message,
        (error, info) => resolve(error ? { error } : { response: info.response }),
      );
    });
  } finally {
    connection.quit();
  }
}

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
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

before(async () => {
  primary = await Primary.create();
  dns = await startDnsServer({
    'member.example': {
      MX: [
        { preference: 10, exchange: 'primary.member.example' },
        { preference: 200, exchange: 'mx2.example.net' },
      ],
    },
    'primary.member.example': { A: ['127.0.0.1'] },
    'mx2.example.net': { A: ['127.0.0.1'] },
    'sender.example': { MX: [{ preference: 10, exchange: 'mx.sender.example' }] },
  });
  certificateDirectory = await mkdtemp(join(tmpdir(), 'e2e-tls-'));
  const certificate = await writeTestCertificate(certificateDirectory, 'mx2.example.net');
  suite = await startSuite({
    env: {
      DNS_SERVERS: dns.server,
      MX_TLS_CERT_FILE: certificate.certFile,
      MX_TLS_KEY_FILE: certificate.keyFile,
      MX_SELF_NAMES: 'mx2.example.net',
      MX_DELIVERY_PORT: String(primary.port),
      MX_GREYLIST_DELAY: `${GREYLIST_DELAY_S}s`,
      MX_GREYLIST_RETRY_WINDOW: '1m',
      MX_RETRY_MIN: '1s',
      MX_RETRY_MAX: '2s',
      MX_SCHEDULER_INTERVAL: '200ms',
      MX_DOMAIN_REFRESH: '1m',
      MX_CONNECT_TIMEOUT: '2s',
    },
  });
});

after(async () => {
  await suite?.stop();
  await primary?.stop();
  await dns?.close();
  await rm(certificateDirectory, { recursive: true, force: true });
});

test('mail waits while the primary is down and reaches it when it comes up', async () => {
  const request = await suite.api('POST', '/api/domains', {
    domain: 'member.example',
    memberNumber: '1001',
  });
  assert.equal(request.status, 201, JSON.stringify(request.body));
  assert.equal(request.body.state, 'pending');

  const message = composeMessage();
  const refused = await send(message);
  assert.equal(refused.error?.responseCode, 550, 'a pending domain is not relayed');

  const approval = await suite.api('POST', '/api/domains/member.example/approve');
  assert.equal(approval.status, 200, JSON.stringify(approval.body));
  assert.equal(approval.body.domain.state, 'approved');

  // The approval reaches ingress within seconds; until then RCPT still gets 550.
  const firstAttempt = await until(
    'ingress to relay the approved domain',
    async () => {
      const result = await send(message);
      return result.error?.responseCode === 550 ? undefined : result;
    },
    5000,
  );
  assert.equal(
    firstAttempt.error?.responseCode,
    451,
    `first attempt is greylisted: ${firstAttempt.error?.message}`,
  );
  assert.match(String((firstAttempt.error as { response?: string })?.response), /^451 4\.7\.1 /);

  await new Promise((resolve) => setTimeout(resolve, GREYLIST_DELAY_S * 1000 + 200));
  const accepted = await send(message);
  assert.ok(accepted.response, `retry after the delay is accepted: ${accepted.error?.message}`);
  const queueId = /queued as ([0-9A-Z]{20})/.exec(accepted.response)?.[1];
  assert.ok(queueId, accepted.response);

  const waiting = await until(
    'a failed attempt to reach the primary',
    async () => {
      const { body } = await suite.api('GET', '/api/messages?domain=member.example');
      const recipients = body.messages?.[0]?.recipients ?? [];
      return recipients.length === 2 &&
        recipients.every((r: { state: string }) => r.state === 'deferred')
        ? recipients
        : undefined;
    },
    10_000,
  );
  assert.equal(waiting.length, 2);

  const upAt = Date.now();
  await primary.start();
  await primary.waitForMessages(1, 10_000);
  assert.ok(Date.now() - upAt < 10_000);

  const received = primary.messages[0];
  assert.ok(received);
  assert.equal(received.mailFrom, 'zoe@sender.example');
  assert.deepEqual(received.rcptTo, ['bob@member.example', 'carol@member.example']);
  assert.equal(received.mailParameters.BODY, '8BITMIME');
  const raw = received.raw.toString('latin1');
  const trace =
    /^Received: from client\.sender\.example \([^\r\n]*\)\r\n\t\(using TLSv1\.[23] with cipher [\w-]+\)\r\n\tby mx2\.example\.net \(secondary-mx\) with ESMTPS id ([0-9A-Z]{20}); [^\r\n]+\r\n/.exec(
      raw,
    );
  assert.ok(trace, `message starts with our Received: line:\n${raw.slice(0, 300)}`);
  assert.equal(trace[1], queueId);
  const afterTrace = raw.slice(trace[0].length);
  const greylistHeader =
    /^X-Greylist: delayed [1-9]\d* seconds by secondary-mx at mx2\.example\.net; [^\r\n]+\r\n/.exec(
      afterTrace,
    );
  assert.ok(greylistHeader, `X-Greylist follows Received:\n${afterTrace.slice(0, 300)}`);
  const headerBytes = Buffer.byteLength(trace[0] + greylistHeader[0], 'latin1');
  assert.ok(received.raw.subarray(headerBytes).equals(message), 'bytes are unchanged');

  const delivered = await until(
    'the API to show both recipients delivered',
    async () => {
      const { body } = await suite.api(
        'GET',
        `/api/messages?domain=member.example&state=delivered`,
      );
      const recipients = body.messages?.[0]?.recipients ?? [];
      return recipients.length === 2 ? recipients : undefined;
    },
    5000,
  );
  assert.deepEqual(
    delivered.map((recipient: { address: string }) => recipient.address),
    ['bob@member.example', 'carol@member.example'],
  );
  assert.equal(primary.messages.length, 1, 'delivered once');
});
