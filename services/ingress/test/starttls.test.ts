import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SmtpClient, type TestCertificate, writeTestCertificate } from '@secondary-mx/testkit';
import { type IngressUnderTest, startIngressUnderTest } from './support.ts';

describe('without a certificate', () => {
  let ingress: IngressUnderTest;

  before(async () => {
    ingress = await startIngressUnderTest('notls', { MX_PREGREET_WAIT: '0s' });
  });

  after(async () => {
    await ingress?.stop();
  });

  test('EHLO does not advertise STARTTLS', async () => {
    const { client } = await SmtpClient.connect(ingress.port);
    const reply = await client.command('EHLO client.example');
    client.close();
    assert.equal(reply.code, 250);
    assert.doesNotMatch(reply.text, /STARTTLS/);
  });

  test('STARTTLS gets a 5xx reply', async () => {
    const { client } = await SmtpClient.connect(ingress.port);
    await client.command('EHLO client.example');
    const reply = await client.command('STARTTLS');
    client.close();
    assert.match(reply.text, /^5\d\d /);
  });
});

describe('with a certificate', () => {
  let ingress: IngressUnderTest;
  let directory: string;
  let first: TestCertificate;

  /** Runs EHLO and STARTTLS; returns the client and the fingerprint of the certificate offered. */
  async function startTls(): Promise<{ client: SmtpClient; fingerprint: string }> {
    const { client } = await SmtpClient.connect(ingress.port);
    const ehlo = await client.command('EHLO client.example');
    assert.match(ehlo.text, /^250[- ]STARTTLS$/m);
    const socket = await client.startTls('mx2.example.net');
    return { client, fingerprint: socket.getPeerCertificate().fingerprint256 };
  }

  /** Waits until a new STARTTLS session gets the certificate with this fingerprint. */
  async function waitForCertificate(fingerprint: string): Promise<void> {
    let offered = '';
    for (let i = 0; i < 100; i++) {
      const session = await startTls();
      session.client.close();
      offered = session.fingerprint;
      if (offered === fingerprint) {
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(offered, fingerprint, 'the new certificate is offered');
  }

  before(async () => {
    directory = await mkdtemp(join(tmpdir(), 'ingress-tls-'));
    first = await writeTestCertificate(directory, 'mx2.example.net');
    ingress = await startIngressUnderTest('tls', {
      MX_PREGREET_WAIT: '0s',
      MX_TLS_CERT_FILE: first.certFile,
      MX_TLS_KEY_FILE: first.keyFile,
      MX_TLS_RELOAD_INTERVAL: '100ms',
    });
  });

  after(async () => {
    await ingress?.stop();
    await rm(directory, { recursive: true, force: true });
  });

  test('STARTTLS offers the certificate from the files', async () => {
    const { client, fingerprint } = await startTls();
    client.close();
    assert.equal(fingerprint, first.fingerprint256);
  });

  test('Received: says ESMTPS with the TLS version and cipher', async () => {
    const { client } = await startTls();
    assert.equal((await client.command('EHLO client.example')).code, 250);
    assert.equal((await client.command('MAIL FROM:<alice@sender.example>')).code, 250);
    assert.equal((await client.command('RCPT TO:<bob@member.example>')).code, 250);
    assert.equal((await client.command('DATA')).code, 354);
    client.write('Subject: over TLS\r\n\r\nbody\r\n.\r\n');
    const reply = await client.read();
    client.close();
    const queueId = /queued as ([0-9A-Z]{20})$/.exec(reply.text)?.[1];
    assert.ok(queueId, reply.text);
    const stored = await ingress.database.query<{ body: Buffer }>(
      'SELECT body FROM messages WHERE id = $1',
      [queueId],
    );
    const body = (stored.rows[0] as { body: Buffer }).body.toString('latin1');
    assert.match(body, /^Received: from client\.example \([^\r\n]*\)\r\n/);
    assert.match(body, /\r\n\t\(using TLSv1\.3 with cipher TLS_[A-Z0-9_]+\)\r\n/);
    assert.match(
      body,
      new RegExp(`\\tby mx2\\.example\\.net \\(secondary-mx\\) with ESMTPS id ${queueId}\\r\\n`),
    );
  });

  test('a renewed certificate is offered without a restart', async () => {
    const renewed = await writeTestCertificate(directory, 'mx2.example.net');
    assert.notEqual(renewed.fingerprint256, first.fingerprint256);
    await waitForCertificate(renewed.fingerprint256);
  });

  test('a key that does not match keeps the previous certificate', async () => {
    const current = await writeTestCertificate(directory, 'mx2.example.net');
    await waitForCertificate(current.fingerprint256);
    const other = await writeTestCertificate(directory, 'mx2.example.net', 'other');
    await writeFile(current.certFile, await readFile(other.certFile));
    // Two polling intervals and more: the pair was checked and refused by now.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const { client, fingerprint } = await startTls();
    client.close();
    assert.equal(fingerprint, current.fingerprint256);
  });
});
