import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalizeSender } from '../src/sender.ts';

const CASES: [sender: string, normalized: string][] = [
  // Case and the null sender.
  ['', ''],
  ['Alice@Example.COM', 'alice@example.com'],
  // Extensions: `+` is a separator, `-` is not.
  ['alice+lists@example.com', 'alice@example.com'],
  ['alice+a+b@example.com', 'alice@example.com'],
  ['first-last@example.com', 'first-last@example.com'],
  ['+only@example.com', '+only@example.com'],
  // BATV.
  ['prvs=1234567890=bob@example.net', 'bob@example.net'],
  ['PRVS=0987654321=Bob@Example.NET', 'bob@example.net'],
  ['msprvs1=19876abcdEF=bounces-1@mail.example', 'bounces-#@mail.example'],
  ['btv1==0f1e2d3c4b5==carol@example.org', 'carol@example.org'],
  ['prvs=bob@example.net', 'prvs=bob@example.net'],
  // SRS, keyed by the original domain and user.
  ['SRS0=HHH=TT=orig.example=alice@forwarder.example', 'alice@orig.example'],
  ['srs0+x1Yz=2B=orig.example=alice@forwarder.example', 'alice@orig.example'],
  ['SRS0=HHH=TT=orig.example=a=b@forwarder.example', 'a=b@orig.example'],
  ['SRS1=HHH=first.example==HHH=TT=orig.example=alice@second.example', 'alice@orig.example'],
  ['SRS0=HHH=TT=orig.example=prvs=1234567890=bob@fwd.example', 'bob@orig.example'],
  ['SRS0=HHH=TT=orig.example=alice+tag@fwd.example', 'alice@orig.example'],
  // VERP: numbers, hex with a digit, and an encoded recipient.
  ['bounce-12345-abcdef0123@lists.example', 'bounce-#-#@lists.example'],
  ['bounce-67890-0123abcdef@lists.example', 'bounce-#-#@lists.example'],
  ['bounce.2026.42@lists.example', 'bounce.#.#@lists.example'],
  ['owner-list_77@lists.example', 'owner-list_#@lists.example'],
  ['bounce-user=example.com@lists.example', 'bounce-#@lists.example'],
  ['list-bounces+user=example.com@lists.example', 'list-bounces@lists.example'],
  ['user=example.com@lists.example', '#@lists.example'],
  // Words that only look like hex or numbers stay.
  ['cafe-face@example.com', 'cafe-face@example.com'],
  ['news2day@example.com', 'news2day@example.com'],
  ['deadbeef@example.com', 'deadbeef@example.com'],
];

test('normalizeSender table', () => {
  for (const [sender, normalized] of CASES) {
    assert.equal(normalizeSender(sender), normalized, sender);
  }
});

test('normalizeSender keeps distinct users apart', () => {
  assert.notEqual(normalizeSender('alice@example.com'), normalizeSender('bob@example.com'));
  assert.notEqual(normalizeSender('alice@example.com'), normalizeSender('alice@example.org'));
  assert.notEqual(
    normalizeSender('SRS0=H=TT=a.example=alice@fwd.example'),
    normalizeSender('SRS0=H=TT=b.example=alice@fwd.example'),
  );
});
