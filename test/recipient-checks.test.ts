/**
 * Per-domain recipient checks and the greylist switch, across all five services as separate
 * processes: each policy is set through the admin API and the RCPT replies of ingress are
 * checked while the fake primary is up, down, slow or answering 4xx.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  type FakePrimary,
  type PrimaryReply,
  SmtpClient,
  type SmtpReply,
  type Suite,
  startDnsServer,
  startFakePrimary,
  startSuite,
  type TestDnsServer,
} from '@secondary-mx/testkit';

const NEGATIVE_TTL_S = 6;
const VERIFY_TIMEOUT_MS = 2000;

let suite: Suite;
let dns: TestDnsServer;
let primary: FakePrimary;
/** RCPT commands the fake primary received, by address in lower case. */
const rcptCounts = new Map<string, number>();
/** Reverse-paths of the MAIL commands the fake primary received. */
const mailFroms: string[] = [];

function rcptCount(address: string): number {
  return rcptCounts.get(address.toLowerCase()) ?? 0;
}

/** Returns the fake primary's RCPT reply, chosen by the local part's prefix. */
function primaryRcptReply(address: string): PrimaryReply | Promise<PrimaryReply> | undefined {
  const localPart = address.slice(0, address.lastIndexOf('@')).toLowerCase();
  if (localPart.startsWith('unknown')) {
    return { code: 550, message: `5.1.1 <${address}>: No such user here` };
  }
  if (localPart.startsWith('tempfail')) {
    return { code: 451, message: '4.3.0 Try again later' };
  }
  if (localPart.startsWith('slow')) {
    const reply = { code: 550, message: '5.1.1 No such user (late)' };
    return new Promise((resolve) => setTimeout(() => resolve(reply), VERIFY_TIMEOUT_MS + 1000));
  }
  return undefined;
}

/** Opens a session, sends MAIL FROM and one RCPT TO, and returns the RCPT reply. */
async function rcpt(address: string): Promise<SmtpReply> {
  const { client } = await SmtpClient.connect(suite.smtpPort);
  try {
    await client.command('EHLO client.sender.example');
    const mail = await client.command('MAIL FROM:<zoe@sender.example>');
    assert.equal(mail.code, 250, mail.text);
    return await client.command(`RCPT TO:<${address}>`);
  } finally {
    client.close();
  }
}

/**
 * Polls until the RCPT reply for the address has the code; returns that reply. A relay denial
 * (5.7.1) does not count, because ingress sends it until it has loaded a new domain.
 */
async function waitForReply(address: string, code: number, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  let last: SmtpReply | undefined;
  while (Date.now() < deadline) {
    last = await rcpt(address);
    if (last.code === code && !/^\d{3} 5\.7\.1 /.test(last.text)) {
      return last;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(
    `RCPT TO:<${address}> still gets ${last?.text} after ${timeoutMs} ms\n${suite.logs()}`,
  );
}

async function addDomain(domain: string, settings: Record<string, unknown>): Promise<void> {
  const created = await suite.api('POST', '/api/domains', { domain, memberNumber: '1001' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const approved = await suite.api('POST', `/api/domains/${domain}/approve`);
  assert.equal(approved.status, 200, JSON.stringify(approved.body));
  const changed = await suite.api('PATCH', `/api/domains/${domain}`, settings);
  assert.equal(changed.status, 200, JSON.stringify(changed.body));
}

before(async () => {
  primary = await startFakePrimary();
  primary.onMail = (address) => {
    mailFroms.push(address);
    return undefined;
  };
  primary.onRcpt = (address) => {
    rcptCounts.set(address.toLowerCase(), rcptCount(address) + 1);
    return primaryRcptReply(address);
  };
  const mx = [
    { preference: 10, exchange: 'primary.member.example' },
    { preference: 200, exchange: 'mx2.example.net' },
  ];
  dns = await startDnsServer({
    'verify.example': { MX: mx },
    'primary.member.example': { A: ['127.0.0.1'] },
    'mx2.example.net': { A: ['127.0.0.1'] },
    // The sender domain must resolve, or ingress rejects MAIL FROM with 450 4.1.8.
    'sender.example': { A: ['127.0.0.1'] },
  });
  suite = await startSuite({
    env: {
      DNS_SERVERS: dns.server,
      MX_SELF_NAMES: 'mx2.example.net',
      MX_DELIVERY_PORT: String(primary.port),
      MX_CONNECT_TIMEOUT: '1s',
      MX_VERIFY_TIMEOUT: `${VERIFY_TIMEOUT_MS}ms`,
      MX_VERIFY_NEGATIVE_TTL: `${NEGATIVE_TTL_S}s`,
      MX_VERIFY_POSITIVE_TTL: '1h',
      MX_GREYLIST_DELAY: '1h',
      MX_DOMAIN_REFRESH: '1m',
    },
  });
});

after(async () => {
  await suite?.stop();
  await primary?.stop();
  await dns?.close();
});

describe('recipientCheck none', () => {
  test('any local part passes, primary up or down', async () => {
    await addDomain('none.example', { greylist: false });
    assert.equal((await waitForReply('anyone@none.example', 250)).code, 250);

    await primary.stop();
    try {
      const reply = await rcpt('someone-else@none.example');
      assert.equal(reply.code, 250, reply.text);
    } finally {
      await primary.start();
    }
    assert.equal(rcptCount('anyone@none.example'), 0);
  });
});

describe('recipientCheck list', () => {
  test('listed addresses and patterns pass, others get 550 5.1.1', async () => {
    await addDomain('list.example', { greylist: false });
    const put = await suite.api('PUT', '/api/domains/list.example/recipients', {
      recipients: ['alice@list.example', 'sales-*@'],
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const patch = await suite.api('PATCH', '/api/domains/list.example', { recipientCheck: 'list' });
    assert.equal(patch.body.recipientCheck, 'list');

    const rejected = await waitForReply('nobody@list.example', 550);
    assert.equal(
      rejected.text,
      '550 5.1.1 <nobody@list.example>: recipient address rejected: user unknown',
    );

    const cases: [string, number][] = [
      ['alice@list.example', 250],
      ['ALICE@LIST.Example', 250],
      ['sales-eu@list.example', 250],
      ['Sales-EU@list.example', 250],
      ['sales-@list.example', 250],
      ['sales@list.example', 550],
      ['alice.smith@list.example', 550],
      ['postmaster@list.example', 250],
      ['PostMaster@list.example', 250],
    ];
    for (const [address, code] of cases) {
      const reply = await rcpt(address);
      assert.equal(reply.code, code, `${address}: ${reply.text}`);
    }

    // The list needs no primary: with it down the replies stay the same.
    await primary.stop();
    try {
      for (const [address, code] of cases) {
        const reply = await rcpt(address);
        assert.equal(reply.code, code, `${address} with the primary down: ${reply.text}`);
      }
    } finally {
      await primary.start();
    }
    assert.equal(rcptCount('alice@list.example'), 0);
  });

  test('single entries and case sensitivity take effect', async () => {
    const added = await suite.api('POST', '/api/domains/list.example/recipients', {
      recipient: '*@',
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    await waitForReply('bob@list.example', 250);

    const removed = await suite.api(
      'DELETE',
      `/api/domains/list.example/recipients/${encodeURIComponent('*@')}`,
    );
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    await waitForReply('bob@list.example', 550);

    await suite.api('PATCH', '/api/domains/list.example', { localPartCaseSensitive: true });
    await waitForReply('ALICE@list.example', 550);
    assert.equal((await rcpt('alice@LIST.EXAMPLE')).code, 250, 'the domain stays case-insensitive');
    assert.equal((await rcpt('POSTMASTER@list.example')).code, 250);
  });
});

describe('recipientCheck verify', () => {
  test('primary verdicts are relayed and cached', async () => {
    await addDomain('verify.example', { greylist: false, recipientCheck: 'verify' });
    const rejected = await waitForReply('unknown-1@verify.example', 550);
    assert.match(
      rejected.text,
      /^550 5\.1\.1 <unknown-1@verify\.example>: recipient address rejected: /,
    );
    assert.match(rejected.text, /No such user here/);
    assert.equal(rcptCount('unknown-1@verify.example'), 1);

    const again = await rcpt('unknown-1@verify.example');
    assert.equal(again.text, rejected.text, 'the cached rejection repeats the primary text');
    assert.equal(
      rcptCount('unknown-1@verify.example'),
      1,
      'the second RCPT is answered from the cache',
    );

    for (let i = 0; i < 3; i++) {
      const reply = await rcpt('valid@verify.example');
      assert.equal(reply.code, 250, reply.text);
    }
    assert.equal(rcptCount('valid@verify.example'), 1);
    assert.equal((await rcpt('VALID@verify.example')).code, 250);
    assert.equal(
      rcptCount('valid@verify.example'),
      1,
      'spellings that differ in case share an entry',
    );

    assert.ok(mailFroms.length > 0);
    assert.ok(
      mailFroms.every((sender) => sender === ''),
      'verification uses MAIL FROM:<>',
    );
    assert.equal(primary.messages.length, 0, 'verification sends no DATA');
    assert.equal(rcptCount('postmaster@verify.example'), 0);
    assert.equal((await rcpt('postmaster@verify.example')).code, 250);
    assert.equal(rcptCount('postmaster@verify.example'), 0, 'postmaster is accepted unasked');
  });

  test('concurrent RCPTs for one address ask once', async () => {
    const replies = await Promise.all([1, 2, 3].map(() => rcpt('together@verify.example')));
    for (const reply of replies) {
      assert.equal(reply.code, 250, reply.text);
    }
    assert.equal(rcptCount('together@verify.example'), 1);
  });

  test('4xx from the primary accepts without caching', async () => {
    assert.equal((await rcpt('tempfail@verify.example')).code, 250);
    assert.equal((await rcpt('tempfail@verify.example')).code, 250);
    assert.equal(rcptCount('tempfail@verify.example'), 2);
  });

  test('late verdict after the timeout fills the cache', async () => {
    const first = await rcpt('slow@verify.example');
    assert.equal(first.code, 250, `no verdict within the timeout accepts: ${first.text}`);
    const later = await waitForReply('slow@verify.example', 550);
    assert.match(later.text, /No such user \(late\)/);
    const cached = await rcpt('slow@verify.example');
    assert.equal(cached.code, 550, cached.text);
    assert.equal(rcptCount('slow@verify.example'), 1);
  });

  test('primary down: cache decides, unknown accepted', async () => {
    const cachedAt = Date.now();
    assert.equal((await rcpt('unknown-2@verify.example')).code, 550);
    await primary.stop();
    try {
      const cached = await rcpt('unknown-2@verify.example');
      const elapsed = Date.now() - cachedAt;
      assert.ok(elapsed < NEGATIVE_TTL_S * 1000, `the check took ${elapsed} ms, past the TTL`);
      assert.equal(cached.code, 550, `the cached rejection still applies: ${cached.text}`);
      assert.equal((await rcpt('fresh@verify.example')).code, 250);
      assert.equal((await rcpt('valid@verify.example')).code, 250);

      // Once the negative entry expires, the unreachable primary leaves the recipient unknown.
      await new Promise((resolve) => setTimeout(resolve, NEGATIVE_TTL_S * 1000 + 200));
      const expired = await rcpt('unknown-2@verify.example');
      assert.equal(expired.code, 250, expired.text);
    } finally {
      await primary.start();
    }
    assert.equal((await rcpt('unknown-2@verify.example')).code, 550);
    assert.equal(
      rcptCount('unknown-2@verify.example'),
      2,
      'the primary is asked again after expiry',
    );
  });

  test('next-hop override is the host asked', async () => {
    await addDomain('override.example', {
      greylist: false,
      recipientCheck: 'verify',
      primaryHosts: [primary.address],
    });
    const reply = await waitForReply('unknown-3@override.example', 550);
    assert.match(reply.text, /No such user here/);
    assert.equal((await rcpt('someone@override.example')).code, 250);
    assert.equal(rcptCount('someone@override.example'), 1);
  });
});

describe('greylist switch', () => {
  test('greylist false skips the greylist for the domain', async () => {
    await addDomain('grey.example', { greylist: true });
    const greylisted = await waitForReply('carol@grey.example', 451);
    assert.match(greylisted.text, /^451 4\.7\.1 /);

    const off = await suite.api('PATCH', '/api/domains/grey.example', { greylist: false });
    assert.equal(off.body.greylist, false);
    await waitForReply('dave@grey.example', 250);

    const shown = await suite.api('GET', '/api/domains/grey.example');
    assert.equal(shown.body.greylist, false);

    await suite.api('PATCH', '/api/domains/grey.example', { greylist: true });
    await waitForReply('erin@grey.example', 451);
  });
});
