import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isDynamicName } from '../src/dynamic-name.ts';

test('isDynamicName finds embedded addresses', () => {
  const cases: [hostPart: string, address: string][] = [
    ['p7f070001.dip0.', '127.7.0.1'],
    ['7F070001.', '127.7.0.1'],
    ['host-0100077f.', '127.7.0.1'],
    ['1-0-7-127.', '127.7.0.1'],
    ['127.0.7.1.', '127.7.0.1'],
    ['h127-000-007-001.', '127.7.0.1'],
    ['ip127007000001.', '127.7.0.1'],
    ['001000007127.', '127.7.0.1'],
    ['7.127.1.0.', '127.7.0.1'],
    ['c2131165185.', '127.7.0.1'],
    ['static-127-7-0-1.', '127.7.0.1'],
    ['40-107-0-89.', '::ffff:40.107.0.89'],
    ['2001-db8--9.', '2001:db8::9'],
    ['2001-0db8-0000-0000-0000-0000-0000-0009.', '2001:db8::9'],
    ['20010db8000000000000000000000009.', '2001:db8::9'],
    ['9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.', '2001:db8::9'],
    ['9-0-0-0-0-0-db8-2001.', '2001:db8::9'],
  ];
  for (const [hostPart, address] of cases) {
    assert.equal(isDynamicName(hostPart, address), true, `${hostPart} for ${address}`);
  }
});

test('isDynamicName finds pool words with digits', () => {
  const words = [
    'dynamic-12.',
    'dyn12.',
    'dhcp-12.',
    'pool-12.',
    'dialup12.',
    'adsl-12.',
    'dsl12.',
    'cable-12.',
    'pppoe-12.',
    'client-12.',
    'customer12.',
    'broadband-12.',
    'host12.dyn.',
  ];
  for (const hostPart of words) {
    assert.equal(isDynamicName(hostPart, '127.7.0.1'), true, hostPart);
  }
});

test('isDynamicName keeps mail server names', () => {
  const cases: [hostPart: string, address: string][] = [
    ['mail-a.outbound.', '127.7.0.1'],
    ['mail-40.', '127.7.0.1'],
    ['127-7-0-2.', '127.7.0.1'],
    ['1127-7-0-1.', '127.7.0.1'],
    ['static12.', '127.7.0.1'],
    ['dyn.mail.', '127.7.0.1'],
    ['smtp-out-7f070002.', '127.7.0.1'],
    ['2001-db8--a.', '2001:db8::9'],
    ['mx1.', '2001:db8::9'],
    ['', '127.7.0.1'],
  ];
  for (const [hostPart, address] of cases) {
    assert.equal(isDynamicName(hostPart, address), false, `${hostPart} for ${address}`);
  }
});
