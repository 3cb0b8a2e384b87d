/**
 * Whitelist entries added through the admin API, across queue-store, greylist, ingress and
 * admin-api as separate processes: an SMTP client that is greylisted passes as soon as an entry
 * covers it, and is greylisted again as soon as the entry is removed.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  SmtpClient,
  type SmtpReply,
  type Suite,
  startDnsServer,
  startSuite,
  type TestDnsServer,
} from '@secondary-mx/testkit';

const DOMAIN = 'member.example';
/** A loopback address of its own, so no other test's triplets or entries cover it. */
const CLIENT = '127.0.0.57';

let suite: Suite;
let dns: TestDnsServer;

before(async () => {
  dns = await startDnsServer({
    // Sender domains must resolve, or ingress rejects MAIL FROM with 450 4.1.8.
    'partner.example': { MX: [{ preference: 10, exchange: 'mx.partner.example' }] },
  });
  suite = await startSuite({
    services: ['queue-store', 'greylist', 'ingress', 'admin-api'],
    env: {
      DNS_SERVERS: dns.server,
      // Long enough that no retry in this test passes by waiting.
      MX_GREYLIST_DELAY: '1h',
      MX_GREYLIST_RETRY_WINDOW: '2h',
      MX_DOMAIN_REFRESH: '1m',
      MX_PREGREET_WAIT: '0s',
    },
  });
  const registered = await suite.api('POST', '/api/domains', {
    domain: DOMAIN,
    memberNumber: '1001',
  });
  assert.equal(registered.status, 201, JSON.stringify(registered.body));
  const approved = await suite.api('POST', `/api/domains/${DOMAIN}/approve`);
  assert.equal(approved.status, 200, JSON.stringify(approved.body));
  await suite.waitUntilRelayed(DOMAIN);
});

after(async () => {
  await suite?.stop();
  await dns?.close();
});

/** Opens a session from CLIENT and sends RCPT for the recipient; returns the reply. */
async function tryRecipient(recipient: string): Promise<SmtpReply> {
  const { client } = await SmtpClient.connect(suite.smtpPort, '127.0.0.1', CLIENT);
  try {
    assert.equal((await client.command('EHLO relay.partner.example')).code, 250);
    assert.equal((await client.command('MAIL FROM:<ops@partner.example>')).code, 250);
    return await client.command(`RCPT TO:<${recipient}>`);
  } finally {
    client.close();
  }
}

test('whitelist entry lets a client pass at once', async () => {
  const recipient = `bob@${DOMAIN}`;
  const greylisted = await tryRecipient(recipient);
  assert.match(greylisted.text, /^451 4\.7\.1 /, `before the entry:\n${suite.logs()}`);

  const added = await suite.api('POST', '/api/greylist/whitelist', {
    kind: 'client',
    value: `${CLIENT}/32`,
    note: 'partner relay',
  });
  assert.equal(added.status, 201, JSON.stringify(added.body));
  const passed = await tryRecipient(recipient);
  assert.equal(passed.code, 250, `with the entry: ${passed.text}`);
  const lookup = await suite.api(
    'GET',
    `/api/greylist/triplets?client=${CLIENT}&sender=ops@partner.example&recipient=${recipient}`,
  );
  assert.equal(lookup.body.state, 'whitelisted');
  assert.equal(lookup.body.reason, 'whitelisted-client');

  const removed = await suite.api('DELETE', `/api/greylist/whitelist/client/${CLIENT}`);
  assert.equal(removed.status, 200, JSON.stringify(removed.body));
  const again = await tryRecipient(recipient);
  assert.match(again.text, /^451 4\.7\.1 /, 'after the entry is removed');
  const other = await tryRecipient(`carol@${DOMAIN}`);
  assert.match(other.text, /^451 4\.7\.1 /, 'a new triplet after the entry is removed');
});
