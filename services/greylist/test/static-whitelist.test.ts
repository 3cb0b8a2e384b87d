import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StaticWhitelist } from '../src/static-whitelist.ts';

const whitelist = new StaticWhitelist({
  clients: ['192.0.2.0/24', '2001:db8:5::/48', '198.51.100.7/32'],
  names: ['relay.example', 'mail.partner.example'],
  senders: ['trusted.example'],
});

const subject = { clientAddress: '203.0.113.1', sender: 'someone@elsewhere.example' };

test('static whitelist matches client networks', () => {
  for (const clientAddress of [
    '192.0.2.1',
    '192.0.2.255',
    '::ffff:192.0.2.9',
    '2001:db8:5:ff::1',
    '198.51.100.7',
  ]) {
    assert.equal(
      whitelist.match({ ...subject, clientAddress }),
      'whitelisted-client',
      clientAddress,
    );
  }
  for (const clientAddress of ['192.0.3.1', '198.51.100.8', '2001:db8:6::1', 'unknown']) {
    assert.equal(whitelist.match({ ...subject, clientAddress }), undefined, clientAddress);
  }
});

test('static whitelist matches name suffixes', () => {
  for (const clientName of ['relay.example', 'out-1.relay.example', 'MX.Mail.Partner.Example.']) {
    assert.equal(whitelist.match({ ...subject, clientName }), 'whitelisted-name', clientName);
  }
  for (const clientName of ['badrelay.example', 'partner.example', 'relay.example.evil.example']) {
    assert.equal(whitelist.match({ ...subject, clientName }), undefined, clientName);
  }
});

test('static whitelist matches sender domains', () => {
  for (const sender of ['a@trusted.example', 'b@lists.TRUSTED.example']) {
    assert.equal(whitelist.match({ ...subject, sender }), 'whitelisted-sender', sender);
  }
  for (const sender of ['', 'a@untrusted.example', 'trusted.example@other.example']) {
    assert.equal(whitelist.match({ ...subject, sender }), undefined, sender);
  }
});

test('empty static whitelist matches nothing', () => {
  const empty = new StaticWhitelist({ clients: [], names: [], senders: [] });
  assert.equal(empty.match({ ...subject, clientName: 'relay.example' }), undefined);
});

test('settings entries are listed in normal form', () => {
  const listed = new StaticWhitelist({
    clients: ['192.0.2.5/24'],
    names: ['relay.example'],
    senders: ['trusted.example'],
  }).entries;
  assert.deepEqual(listed, [
    { kind: 'client', value: '192.0.2.0/24', source: 'setting' },
    { kind: 'name', value: 'relay.example', source: 'setting' },
    { kind: 'sender', value: '@trusted.example', source: 'setting' },
  ]);
});

test('further entries match after the settings', () => {
  const stored = [
    { kind: 'client', value: '203.0.113.128/28', source: 'api' },
    { kind: 'name', value: 'mx.partner.example', source: 'api' },
    { kind: 'sender', value: '@lists.example', source: 'api' },
    { kind: 'sender', value: 'news@shop.example', source: 'api' },
  ] as const;
  const combined = new StaticWhitelist(
    { clients: ['192.0.2.0/24'], names: [], senders: [] },
    stored,
  );
  const cases: [Partial<typeof subject> & { clientName?: string }, string | undefined][] = [
    [{ clientAddress: '203.0.113.143' }, '203.0.113.128/28'],
    [{ clientAddress: '203.0.113.144' }, undefined],
    [{ clientAddress: '192.0.2.3' }, '192.0.2.0/24'],
    [{ clientName: 'a.mx.partner.example' }, 'mx.partner.example'],
    [{ sender: 'owner@sub.lists.example' }, '@lists.example'],
    [{ sender: 'News@Shop.Example' }, 'news@shop.example'],
    // Senders compare in the normalized form of greylist keys: no BATV tag, no +extension.
    [{ sender: 'prvs=1234567890=news+tag@shop.example' }, 'news@shop.example'],
    [{ sender: 'other@shop.example' }, undefined],
  ];
  for (const [fields, expected] of cases) {
    const matched = combined.matchEntry({ ...subject, ...fields });
    assert.equal(matched?.entry.value, expected, JSON.stringify(fields));
  }
  assert.equal(combined.match({ ...subject, sender: 'news@shop.example' }), 'whitelisted-sender');
  assert.equal(combined.entries.length, 5);
});
