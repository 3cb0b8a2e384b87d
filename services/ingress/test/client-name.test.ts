import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { reverseName, SmtpClient } from '@secondary-mx/testkit';
import { type IngressUnderTest, startIngressUnderTest } from './support.ts';

let ingress: IngressUnderTest;

before(async () => {
  ingress = await startIngressUnderTest('client-name', {});
  ingress.dns.setRecords(reverseName('127.0.0.3'), { PTR: ['relay.client.example'] });
  ingress.dns.setRecords('relay.client.example', { A: ['127.0.0.3'] });
});

after(async () => {
  await ingress?.stop();
});

/** Sends one message from the local address and returns the client name stored with it. */
async function storedClientName(localAddress: string, recipient: string): Promise<unknown> {
  const { client } = await SmtpClient.connect(ingress.port, '127.0.0.1', localAddress);
  await client.command('EHLO client.example');
  await client.command('MAIL FROM:<alice@sender.example>');
  const rcpt = await client.command(`RCPT TO:<${recipient}>`);
  assert.equal(rcpt.code, 250, rcpt.text);
  await client.command('DATA');
  client.write('Subject: client name\r\n\r\nbody\r\n.\r\n');
  const queued = await client.read();
  assert.equal(queued.code, 250, queued.text);
  await client.command('QUIT');

  const result = await ingress.database.query(
    `SELECT m.client_name FROM messages m JOIN recipients r ON r.message_id = m.id
      WHERE r.address = $1`,
    [recipient],
  );
  assert.equal(result.rows.length, 1);
  return result.rows[0].client_name;
}

test('client without confirmed name stores none', async () => {
  assert.equal(await storedClientName('127.0.0.1', 'unnamed@no-greylist.example'), null);
});

test('forward-confirmed client name is stored', async () => {
  assert.equal(
    await storedClientName('127.0.0.3', 'named@no-greylist.example'),
    'relay.client.example',
  );
});
