import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { startDnsServer, type TestDnsServer } from '@secondary-mx/testkit';
import { createSpfCheck, type SpfCheck } from '../src/spf.ts';

const dns: TestDnsServer = await startDnsServer({
  'plus-all.example': { TXT: ['v=spf1 +all'] },
  'bare-all.example': { TXT: ['v=spf1 all'] },
  'ip4.example': { TXT: ['v=spf1 ip4:127.40.0.0/24 -all'] },
  'ip4-wide.example': { TXT: ['v=spf1 ip4:127.0.0.0/8 -all'] },
  'ip4-then-all.example': { TXT: ['v=spf1 ip4:127.40.0.0/24 +all'] },
  'ip6.example': { TXT: ['v=spf1 ip6:2001:db8:ab::/48 -all'] },
  'ip6-wide.example': { TXT: ['v=spf1 ip6:2001:db8::/16 -all'] },
  'a.example': { TXT: ['v=spf1 a -all'], A: ['127.40.0.1'] },
  'a-wide.example': { TXT: ['v=spf1 a/8 -all'], A: ['127.0.0.1'] },
  'mx.example': {
    TXT: ['v=spf1 mx -all'],
    MX: [{ preference: 10, exchange: 'mail.mx.example' }],
  },
  'mail.mx.example': { A: ['127.40.0.1'] },
  'include.example': { TXT: ['v=spf1 include:ip4.example -all'] },
  'include-all.example': { TXT: ['v=spf1 include:plus-all.example -all'] },
  'redirect-all.example': { TXT: ['v=spf1 redirect=plus-all.example'] },
  'exists.example': { TXT: ['v=spf1 exists:%{i}.exists.example -all'] },
  '127.40.0.1.exists.example': { A: ['127.0.0.2'] },
  'ptr.example': { TXT: ['v=spf1 ptr -all'] },
});

after(() => dns.close());

function newCheck(): SpfCheck {
  return createSpfCheck({
    dnsServers: [dns.server],
    timeoutMs: 2_000,
    hostname: 'mx2.example.net',
  });
}

test('SPF pass from a specific mechanism groups', async () => {
  const cases: [domain: string, address: string][] = [
    ['ip4.example', '127.40.0.1'],
    ['ip4-then-all.example', '127.40.0.1'],
    ['ip6.example', '2001:db8:ab::9'],
    ['a.example', '127.40.0.1'],
    ['mx.example', '127.40.0.1'],
    ['include.example', '127.40.0.1'],
  ];
  const check = newCheck();
  for (const [domain, address] of cases) {
    const outcome = await check({ clientAddress: address, sender: `news@${domain}` });
    assert.equal(outcome.result, 'pass', domain);
    assert.equal(outcome.groupDomain, domain, domain);
  }
});

test('SPF pass from a wide mechanism does not group', async () => {
  const cases: [domain: string, address: string][] = [
    ['plus-all.example', '127.41.9.9'],
    ['bare-all.example', '127.41.9.9'],
    ['ip4-then-all.example', '127.41.9.9'],
    ['ip4-wide.example', '127.41.9.9'],
    ['ip6-wide.example', '2001:db8:ff::9'],
    ['a-wide.example', '127.41.9.9'],
    ['include-all.example', '127.41.9.9'],
    ['redirect-all.example', '127.41.9.9'],
    ['exists.example', '127.40.0.1'],
  ];
  const check = newCheck();
  for (const [domain, address] of cases) {
    const outcome = await check({ clientAddress: address, sender: `news@${domain}` });
    assert.equal(outcome.result, 'pass', domain);
    assert.equal(outcome.groupDomain, undefined, domain);
  }
});

test('SPF results other than pass do not group', async () => {
  const check = newCheck();
  const failed = await check({ clientAddress: '127.41.9.9', sender: 'news@ip4.example' });
  assert.equal(failed.result, 'fail');
  assert.equal(failed.groupDomain, undefined);
  const nullSender = await check({ clientAddress: '127.40.0.1', sender: '' });
  assert.equal(nullSender.result, 'none');
  assert.equal(nullSender.groupDomain, undefined);
});

test('SPF narrowing asks no name twice', async () => {
  const check = newCheck();
  const before = dns.queryCount('mail.mx.example', 'A');
  await check({ clientAddress: '127.40.0.1', sender: 'news@mx.example' });
  assert.equal(dns.queryCount('mail.mx.example', 'A') - before, 1);
});
