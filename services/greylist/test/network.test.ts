import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clientNetwork, InvalidAddressError } from '../src/network.ts';

test('clientNetwork groups IPv4 by /24', () => {
  assert.equal(clientNetwork('192.0.2.1'), '192.0.2.0/24');
  assert.equal(clientNetwork('192.0.2.255'), '192.0.2.0/24');
  assert.equal(clientNetwork(' 198.51.100.7 '), '198.51.100.0/24');
});

test('clientNetwork treats IPv4-mapped IPv6 as IPv4', () => {
  assert.equal(clientNetwork('::ffff:192.0.2.7'), '192.0.2.0/24');
  assert.equal(clientNetwork('::FFFF:192.0.2.7'), '192.0.2.0/24');
  assert.equal(clientNetwork('::ffff:c000:207'), '192.0.2.0/24');
  assert.equal(clientNetwork('0:0:0:0:0:ffff:192.0.2.7'), '192.0.2.0/24');
});

test('clientNetwork groups embedded IPv4 by /24', () => {
  const cases: [string, string][] = [
    ['64:ff9b::192.0.2.7', '192.0.2.0/24'],
    ['64:ff9b::c000:207', '192.0.2.0/24'],
    ['64:FF9B::127.41.9.9', '127.41.9.0/24'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', '192.0.2.0/24'],
    ['64:ff9b:1::192.0.2.7', '64:ff9b:1::/64'],
  ];
  for (const [address, network] of cases) {
    assert.equal(clientNetwork(address), network, address);
  }
});

test('clientNetwork groups IPv6 by /64', () => {
  const cases: [string, string][] = [
    ['2001:db8:1:2::1', '2001:db8:1:2::/64'],
    ['2001:DB8:1:2:ffff:ffff:ffff:ffff', '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002:0000:0000:0000:0001', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8::/64'],
    ['2001:db8:0:1::5', '2001:db8:0:1::/64'],
    ['[2001:db8:1:2::1]', '2001:db8:1:2::/64'],
    ['fe80::1%eth0', 'fe80::/64'],
    ['::1', '::/64'],
    ['1::', '1::/64'],
    ['2001:db8:1:2::ffff:192.0.2.1', '2001:db8:1:2::/64'],
  ];
  for (const [address, network] of cases) {
    assert.equal(clientNetwork(address), network, address);
  }
});

test('clientNetwork rejects what is not an IP', () => {
  for (const address of [
    '',
    'unknown',
    'mail.example.com',
    '300.1.1.1',
    '1.2.3',
    '01.2.3.4',
    '2001:db8::1::2',
  ]) {
    assert.throws(() => clientNetwork(address), InvalidAddressError, JSON.stringify(address));
  }
});
