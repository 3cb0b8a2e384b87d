import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { GreylistWhitelistKind } from '@secondary-mx/contracts';
import { InvalidWhitelistValueError, normalizeWhitelistValue } from '../src/whitelist-value.ts';

test('client values become networks', () => {
  const cases: [string, string][] = [
    ['192.0.2.7', '192.0.2.7/32'],
    [' 192.0.2.7/24 ', '192.0.2.0/24'],
    ['10.1.2.3/8', '10.0.0.0/8'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['2001:DB8:0:0::1', '2001:db8::1/128'],
    ['2001:db8:1:2:3::/48', '2001:db8:1::/48'],
    ['::ffff:192.0.2.9', '192.0.2.9/32'],
    ['::ffff:192.0.2.0/120', '192.0.2.0/24'],
  ];
  for (const [raw, expected] of cases) {
    assert.equal(normalizeWhitelistValue('client', raw), expected, raw);
  }
});

test('name values become lower-case suffixes', () => {
  assert.equal(normalizeWhitelistValue('name', 'Relay.Example.'), 'relay.example');
  assert.equal(normalizeWhitelistValue('name', '.out.relay.example'), 'out.relay.example');
  assert.equal(normalizeWhitelistValue('name', 'bücher.example'), 'xn--bcher-kva.example');
});

test('sender values keep their form', () => {
  assert.equal(normalizeWhitelistValue('sender', '@Lists.Example.ORG'), '@lists.example.org');
  assert.equal(normalizeWhitelistValue('sender', 'News+X@Shop.Example'), 'news+x@shop.example');
  assert.equal(normalizeWhitelistValue('sender', 'a@bücher.example'), 'a@xn--bcher-kva.example');
});

test('invalid values are rejected with their form', () => {
  const cases: [GreylistWhitelistKind, string, RegExp][] = [
    ['client', '192.0.2', /IP address or network/],
    ['client', '192.0.2.1/33', /IP address or network/],
    ['client', '2001:db8::/129', /IP address or network/],
    ['client', '192.0.2.0/24/8', /IP address or network/],
    ['client', '0x7f.1', /IP address or network/],
    ['client', '192.0.2.0/x', /IP address or network/],
    ['client', 'relay.example', /IP address or network/],
    ['name', '192.0.2.1', /host name suffix/],
    ['name', 'under_score.example', /host name suffix/],
    ['name', 'localhost', /host name suffix/],
    ['sender', 'example.com', /address such as alice@example.com/],
    ['sender', '@', /address such as/],
    ['sender', 'a b@example.com', /address such as/],
    ['sender', 'a@[192.0.2.1]', /address such as/],
    ['sender', `${'x'.repeat(65)}@example.com`, /address such as/],
  ];
  for (const [kind, raw, message] of cases) {
    assert.throws(
      () => normalizeWhitelistValue(kind, raw),
      (error: unknown) =>
        error instanceof InvalidWhitelistValueError && message.test(error.message),
      `${kind} ${raw}`,
    );
  }
});
