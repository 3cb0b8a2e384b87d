import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DnsLookup } from '@secondary-mx/dns';
import { startDnsServer, type TestDnsServer } from '@secondary-mx/testkit';
import { type NextHopPlan, NextHopResolver } from '../src/next-hop.ts';
import { SelfIdentity } from '../src/self-identity.ts';

const DELIVERY_PORT = 2625;
const SELF_NAMES = ['mx.ourmx.test'];
const LISTEN = { host: '127.0.0.1', port: DELIVERY_PORT };

let dns: TestDnsServer;

function resolverFor(
  options: { listen?: typeof LISTEN; random?: () => number; cacheTtlMs?: number } = {},
) {
  const lookup = new DnsLookup({
    servers: [dns.server],
    timeoutMs: 200,
    tries: 1,
    cacheTtlMs: options.cacheTtlMs ?? 0,
  });
  const self = new SelfIdentity(SELF_NAMES, options.listen ?? LISTEN, {});
  return new NextHopResolver(lookup, self, DELIVERY_PORT, options.random);
}

function hostsOf(plan: NextHopPlan): string[] {
  assert.ok(plan.ok, `expected next hops, got ${plan.ok ? '' : plan.verdict.reply}`);
  return plan.hops.map((hop) => hop.host);
}

function verdictOf(plan: NextHopPlan) {
  assert.ok(!plan.ok, 'expected a failure, got next hops');
  return plan.verdict;
}

before(async () => {
  dns = await startDnsServer({
    'member.test': {
      MX: [
        { preference: 40, exchange: 'mx4.member.test' },
        { preference: 20, exchange: 'mx2.member.test' },
        { preference: 30, exchange: 'mx.ourmx.test' },
        { preference: 10, exchange: 'mx1.member.test' },
      ],
    },
    'mx1.member.test': { A: ['127.0.0.11'], AAAA: ['::1'] },
    'mx2.member.test': { A: ['127.0.0.12'] },
    'mx4.member.test': { A: ['127.0.0.14'] },
    'unlisted.test': {
      MX: [
        { preference: 20, exchange: 'mx2.member.test' },
        { preference: 10, exchange: 'mx1.member.test' },
      ],
    },
    'equal.test': {
      MX: [
        { preference: 10, exchange: 'a.equal.test' },
        { preference: 10, exchange: 'b.equal.test' },
        { preference: 10, exchange: 'c.equal.test' },
        { preference: 5, exchange: 'first.equal.test' },
        { preference: 50, exchange: 'MX.OurMX.test.' },
      ],
    },
    'a.equal.test': { A: ['127.0.0.21'] },
    'b.equal.test': { A: ['127.0.0.22'] },
    'c.equal.test': { A: ['127.0.0.23'] },
    'first.equal.test': { A: ['127.0.0.20'] },
    'selfbest.test': {
      MX: [
        { preference: 10, exchange: 'mx.ourmx.test.' },
        { preference: 20, exchange: 'mx2.member.test' },
      ],
    },
    'loopaddr.test': {
      MX: [
        { preference: 10, exchange: 'mx-a.loopaddr.test' },
        { preference: 20, exchange: 'mx-b.loopaddr.test' },
      ],
    },
    'mx-a.loopaddr.test': { A: ['127.0.0.1'] },
    'mx-b.loopaddr.test': { A: ['127.0.0.2'] },
    'onlyself.test': { MX: [{ preference: 10, exchange: 'mx-a.loopaddr.test' }] },
    'implicit.test': { A: ['127.0.0.3'], AAAA: ['::1'] },
    'nullmx.test': { MX: [{ preference: 0, exchange: '.' }] },
    'noaddress.test': { MX: [{ preference: 10, exchange: 'gone.noaddress.test' }] },
    'gone.noaddress.test': {},
    'partial.test': {
      MX: [
        { preference: 10, exchange: 'missing.partial.test' },
        { preference: 20, exchange: 'mx2.member.test' },
      ],
    },
    'primary.member.test': { A: ['127.0.0.30'] },
    'servfail.test': {},
    'slow.test': {},
    'cached.test': { MX: [{ preference: 10, exchange: 'mx2.member.test' }] },
  });
  dns.setFailure('servfail.test', 'SERVFAIL');
  dns.setFailure('slow.test', 'no-response');
});

after(async () => {
  await dns.close();
});

describe('MX selection', () => {
  test('keeps only hosts preferred over ours', async () => {
    const plan = await resolverFor().resolve('member.test', []);
    assert.deepEqual(hostsOf(plan), ['mx1.member.test', 'mx2.member.test']);
  });

  test('resolves A then AAAA addresses with the delivery port', async () => {
    const plan = await resolverFor().resolve('member.test', []);
    assert.ok(plan.ok);
    assert.deepEqual(plan.hops[0], {
      host: 'mx1.member.test',
      port: DELIVERY_PORT,
      addresses: ['127.0.0.11', '::1'],
    });
  });

  test('takes every host when we are not listed', async () => {
    const plan = await resolverFor().resolve('unlisted.test', []);
    assert.deepEqual(hostsOf(plan), ['mx1.member.test', 'mx2.member.test']);
  });

  test('shuffles hosts of equal preference', async () => {
    const low = hostsOf(await resolverFor({ random: () => 0 }).resolve('equal.test', []));
    const high = hostsOf(await resolverFor({ random: () => 0.999 }).resolve('equal.test', []));
    assert.equal(low[0], 'first.equal.test');
    assert.equal(high[0], 'first.equal.test');
    assert.equal(low.length, 4, 'our own entry is never a candidate');
    assert.deepEqual([...low.slice(1)].sort(), ['a.equal.test', 'b.equal.test', 'c.equal.test']);
    assert.notDeepEqual(low.slice(1), high.slice(1));
  });

  test('defers with 4.4.6 when we are the most preferred', async () => {
    const verdict = verdictOf(await resolverFor().resolve('selfbest.test', []));
    assert.equal(verdict.status, 'deferred');
    assert.equal(verdict.enhancedCode, '4.4.6');
    assert.equal(verdict.reply, '451 4.4.6 mail for selfbest.test loops back to myself');
  });

  test('skips a host at our ingress address and port', async () => {
    const plan = await resolverFor().resolve('loopaddr.test', []);
    assert.deepEqual(hostsOf(plan), ['mx-b.loopaddr.test']);
  });

  test('allows our address on another port', async () => {
    const plan = await resolverFor({
      listen: { host: '127.0.0.1', port: DELIVERY_PORT + 1 },
    }).resolve('loopaddr.test', []);
    assert.deepEqual(hostsOf(plan), ['mx-a.loopaddr.test', 'mx-b.loopaddr.test']);
  });

  test('wildcard listener covers all loopback addresses', async () => {
    const resolver = resolverFor({ listen: { host: '0.0.0.0', port: DELIVERY_PORT } });
    const verdict = verdictOf(await resolver.resolve('loopaddr.test', []));
    assert.equal(verdict.enhancedCode, '4.4.6');
  });

  test('defers with 4.4.6 when the only host is our ingress', async () => {
    const verdict = verdictOf(await resolverFor().resolve('onlyself.test', []));
    assert.equal(verdict.status, 'deferred');
    assert.equal(verdict.enhancedCode, '4.4.6');
  });

  test('uses the domain itself without MX records', async () => {
    const plan = await resolverFor().resolve('implicit.test', []);
    assert.ok(plan.ok);
    assert.deepEqual(plan.hops, [
      { host: 'implicit.test', port: DELIVERY_PORT, addresses: ['127.0.0.3', '::1'] },
    ]);
  });

  test('fails permanently on a null MX', async () => {
    const verdict = verdictOf(await resolverFor().resolve('nullmx.test', []));
    assert.equal(verdict.status, 'failed');
    assert.equal(verdict.enhancedCode, '5.1.10');
    assert.match(verdict.reply, /^550 5\.1\.10 /);
  });

  test('defers an unknown domain', async () => {
    const verdict = verdictOf(await resolverFor().resolve('nxdomain.test', []));
    assert.equal(verdict.status, 'deferred');
    assert.equal(verdict.enhancedCode, '4.4.4');
    assert.match(verdict.reply, /NXDOMAIN/);
  });

  test('defers with 4.4.3 on SERVFAIL', async () => {
    const verdict = verdictOf(await resolverFor().resolve('servfail.test', []));
    assert.equal(verdict.status, 'deferred');
    assert.equal(verdict.enhancedCode, '4.4.3');
    assert.match(verdict.reply, /ESERVFAIL/);
  });

  test('defers with 4.4.3 on a DNS timeout', async () => {
    const verdict = verdictOf(await resolverFor().resolve('slow.test', []));
    assert.equal(verdict.status, 'deferred');
    assert.equal(verdict.enhancedCode, '4.4.3');
    assert.match(verdict.reply, /ETIMEOUT/);
  });

  test('defers with 4.4.4 when no MX host has an address', async () => {
    const verdict = verdictOf(await resolverFor().resolve('noaddress.test', []));
    assert.equal(verdict.status, 'deferred');
    assert.equal(verdict.enhancedCode, '4.4.4');
    assert.match(verdict.reply, /gone\.noaddress\.test: no A or AAAA records/);
  });

  test('skips an MX host without an address', async () => {
    const plan = await resolverFor().resolve('partial.test', []);
    assert.deepEqual(hostsOf(plan), ['mx2.member.test']);
  });

  test('caches DNS responses', async () => {
    const resolver = resolverFor({ cacheTtlMs: 60_000 });
    await resolver.resolve('cached.test', []);
    await resolver.resolve('cached.test', []);
    assert.equal(dns.queryCount('cached.test', 'MX'), 1);
  });
});

describe('primaryHosts override', () => {
  test('uses the entries in order', async () => {
    const plan = await resolverFor().resolve('member.test', [
      '127.0.0.1:2526',
      'primary.member.test',
      '[::1]:2527',
      '::1',
    ]);
    assert.ok(plan.ok);
    assert.deepEqual(plan.hops, [
      { host: '127.0.0.1', port: 2526, addresses: ['127.0.0.1'] },
      { host: 'primary.member.test', port: DELIVERY_PORT, addresses: ['127.0.0.30'] },
      { host: '::1', port: 2527, addresses: ['::1'] },
      { host: '::1', port: DELIVERY_PORT, addresses: ['::1'] },
    ]);
  });

  test('skips ourselves by name and by address', async () => {
    const plan = await resolverFor().resolve('member.test', [
      'MX.ourmx.test',
      `127.0.0.1:${DELIVERY_PORT}`,
      '127.0.0.1:2526',
    ]);
    assert.deepEqual(hostsOf(plan), ['127.0.0.1']);
  });

  test('defers with 4.4.6 when every entry is ourselves', async () => {
    const verdict = verdictOf(
      await resolverFor().resolve('member.test', ['mx.ourmx.test', `127.0.0.1:${DELIVERY_PORT}`]),
    );
    assert.equal(verdict.status, 'deferred');
    assert.equal(verdict.reply, '451 4.4.6 mail for member.test loops back to myself');
  });

  test('defers with 4.3.5 when no entry is valid', async () => {
    const verdict = verdictOf(await resolverFor().resolve('member.test', ['bad host', ':25']));
    assert.equal(verdict.status, 'deferred');
    assert.equal(verdict.enhancedCode, '4.3.5');
  });
});
