import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dnsblQueryName } from '../src/dnsbl.ts';

test('IPv4 address is reversed by octet', () => {
  assert.equal(dnsblQueryName('192.0.2.99', 'bl.test'), '99.2.0.192.bl.test');
});

test('IPv4-mapped IPv6 address is looked up as IPv4', () => {
  assert.equal(dnsblQueryName('::ffff:192.0.2.99', 'bl.test'), '99.2.0.192.bl.test');
});

test('IPv6 address is reversed by nibble', () => {
  // The example of RFC 5782 section 2.4.
  assert.equal(
    dnsblQueryName('2001:db8:1:2:3:4:567:89ab', 'bl.test'),
    'b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test',
  );
});

test('compressed IPv6 address is expanded', () => {
  assert.equal(
    dnsblQueryName('2001:DB8::1', 'bl.test'),
    `1.${'0.'.repeat(23)}8.b.d.0.1.0.0.2.bl.test`,
  );
});

test('text that is no address gets no name', () => {
  assert.equal(dnsblQueryName('client.example', 'bl.test'), undefined);
});
