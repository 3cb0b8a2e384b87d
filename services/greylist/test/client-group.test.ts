import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clientGroup, isAutoWhitelistable, organizationalDomain } from '../src/client-group.ts';
import { InvalidAddressError } from '../src/network.ts';

test('clientGroup prefers SPF, then name, then network', () => {
  const address = '40.107.0.89';
  const clientName = 'mail-a.outbound.protection.example';
  assert.equal(
    clientGroup({ clientAddress: address, clientName, spfDomain: 'Example.NET' }),
    'spf:example.net',
  );
  assert.equal(clientGroup({ clientAddress: address, clientName }), 'name:protection.example');
  assert.equal(clientGroup({ clientAddress: address }), 'net:40.107.0.0/24');
  assert.equal(clientGroup({ clientAddress: '2001:db8:1:2::9' }), 'net:2001:db8:1:2::/64');
});

test('clientGroup rejects a client address that is not an IP', () => {
  assert.throws(
    () => clientGroup({ clientAddress: 'unknown', spfDomain: 'example.net' }),
    InvalidAddressError,
  );
});

test('organizationalDomain follows the public suffix list', () => {
  const cases: [name: string, domain: string | undefined][] = [
    ['mail-a.outbound.protection.example', 'protection.example'],
    ['MAIL-X.Outbound.Protection.Outlook.COM.', 'outlook.com'],
    ['smtp.mail.example.co.uk', 'example.co.uk'],
    ['mx.tenant.github.io', 'tenant.github.io'],
    ['localhost', undefined],
    ['co.uk', undefined],
  ];
  for (const [name, domain] of cases) {
    assert.equal(organizationalDomain(name, '192.0.2.1'), domain, name);
  }
  assert.equal(organizationalDomain(undefined, '192.0.2.1'), undefined);
});

test('organizationalDomain skips names that embed the address', () => {
  const cases: [name: string, address: string][] = [
    ['40-107-0-89.pool.isp.example', '40.107.0.89'],
    ['89.0.107.40.dyn.isp.example', '40.107.0.89'],
    ['host-040-107-000-089.isp.example', '40.107.0.89'],
    ['dsl-40-107-0-89.isp.example', '::ffff:40.107.0.89'],
    ['p7f070001.dip0.t-ipconnect.example', '127.7.0.1'],
    ['dyn-12.isp.example', '127.7.0.1'],
    ['2001-db8--9.ip6.isp.example', '2001:db8::9'],
  ];
  for (const [name, address] of cases) {
    assert.equal(organizationalDomain(name, address), undefined, name);
  }
  assert.equal(organizationalDomain('140-107-0-89.isp.example', '40.107.0.89'), 'isp.example');
  assert.equal(organizationalDomain('mail-40.isp.example', '40.107.0.89'), 'isp.example');
});

test('isAutoWhitelistable rejects wide networks', () => {
  const cases: [group: string, expected: boolean][] = [
    ['net:192.0.2.0/24', true],
    ['net:2001:db8:1:2::/64', true],
    ['net:192.0.0.0/16', false],
    ['net:2001:db8::/48', false],
    ['name:protection.example', true],
    ['spf:example.net', true],
  ];
  for (const [group, expected] of cases) {
    assert.equal(isAutoWhitelistable(group), expected, group);
  }
});

test('clientGroup keeps networks at /24 or /64', () => {
  const cases: [address: string, group: string][] = [
    ['127.40.0.1', 'net:127.40.0.0/24'],
    ['::ffff:127.40.0.1', 'net:127.40.0.0/24'],
    ['64:ff9b::127.40.0.1', 'net:127.40.0.0/24'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'net:192.0.2.0/24'],
    ['2001:db8:1:2::9', 'net:2001:db8:1:2::/64'],
  ];
  for (const [address, group] of cases) {
    assert.equal(clientGroup({ clientAddress: address }), group, address);
    assert.equal(isAutoWhitelistable(group), true, group);
  }
});
