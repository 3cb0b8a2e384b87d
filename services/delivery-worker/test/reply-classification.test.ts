import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  classifyReply,
  localVerdict,
  parseReply,
  type ReplyStage,
} from '../src/reply-classification.ts';
import { SelfIdentity } from '../src/self-identity.ts';

function classify(raw: string, stage: ReplyStage = 'data') {
  const parsed = parseReply(raw);
  assert.ok(parsed, `unparsable reply ${raw}`);
  return classifyReply(parsed, stage);
}

describe('reply classification', () => {
  test('maps reply classes to statuses', () => {
    assert.equal(classify('250 2.0.0 Ok: queued').status, 'delivered');
    assert.equal(classify('450 4.2.1 Busy').status, 'deferred');
    assert.equal(classify('550 5.1.1 Unknown').status, 'failed');
    assert.equal(classify('354 go ahead').status, 'deferred');
  });

  test('extracts the enhanced code', () => {
    assert.equal(classify('550 5.7.26 Unauthenticated mail').enhancedCode, '5.7.26');
  });

  test('derives X.0.0 without an enhanced code', () => {
    assert.equal(classify('250 Ok').enhancedCode, '2.0.0');
    assert.equal(classify('451 Try later').enhancedCode, '4.0.0');
    assert.equal(classify('554').enhancedCode, '5.0.0');
    assert.equal(classify('354 go ahead').enhancedCode, '4.0.0');
  });

  test('fixes an enhanced code of the wrong class', () => {
    assert.equal(classify('450 5.1.1 Mailbox busy').enhancedCode, '4.1.1');
  });

  test('joins a multi-line reply into one line', () => {
    const verdict = classify(
      '550-5.1.1 The email account does not exist.\n550 5.1.1 Please check the address.',
    );
    assert.equal(
      verdict.reply,
      '550 5.1.1 The email account does not exist. Please check the address.',
    );
    assert.equal(verdict.enhancedCode, '5.1.1');
  });

  test('rejects text without a reply code', () => {
    assert.equal(parseReply('hello'), undefined);
    assert.equal(parseReply(''), undefined);
  });

  test('truncates long replies to 2000 characters', () => {
    assert.equal(classify(`550 ${'x'.repeat(3000)}`).reply.length, 2000);
    assert.equal(localVerdict('connectFailed', 'y'.repeat(3000)).reply.length, 2000);
  });

  test('builds local verdicts from the table', () => {
    assert.deepEqual(localVerdict('loopsBack', 'mail for a.test loops back to myself'), {
      status: 'deferred',
      reply: '451 4.4.6 mail for a.test loops back to myself',
      enhancedCode: '4.4.6',
      failureKind: 'connection',
    });
    assert.equal(localVerdict('nullMx', 'x').status, 'failed');
  });

  test('sets failureKind on deferrals only', () => {
    assert.equal(classify('450 4.2.1 Busy').failureKind, 'reply');
    assert.equal(classify('354 go ahead').failureKind, 'reply');
    assert.equal(classify('250 Ok').failureKind, undefined);
    assert.equal(classify('550 5.1.1 Unknown').failureKind, undefined);
    assert.equal(localVerdict('connectFailed', 'refused').failureKind, 'connection');
    assert.equal(localVerdict('dnsFailed', 'timed out').failureKind, 'connection');
    assert.equal(localVerdict('nullMx', 'x').failureKind, undefined);
  });

  test('failure kind by stage and reply', () => {
    const cases: [ReplyStage, string, string | undefined][] = [
      ['greeting', '421 4.3.2 shutting down', 'connection'],
      ['greeting', '450 4.3.2 try again later', 'connection'],
      ['ehlo', '421 4.7.0 too many connections', 'connection'],
      ['ehlo', '451 4.3.0 local error', 'connection'],
      ['starttls', '454 4.7.0 TLS not available', 'connection'],
      ['mail', '421 4.3.2 shutting down', 'connection'],
      ['mail', '451 4.3.0 sender check failed', 'connection'],
      ['mail', '452 4.3.1 insufficient system storage', 'connection'],
      ['rcpt', '421 4.3.2 shutting down', 'connection'],
      ['rcpt', '450 4.2.0 greylisted', 'reply'],
      ['rcpt', '451 4.3.0 try again', 'reply'],
      ['rcpt', '452 4.2.2 mailbox full', 'reply'],
      ['data', '421 4.3.2 shutting down', 'connection'],
      ['data', '451 4.3.0 queue file write error', 'reply'],
      ['data', '452 4.3.1 insufficient system storage', 'reply'],
      ['mail', '550 5.7.1 sender rejected', undefined],
      ['rcpt', '550 5.1.1 no such user', undefined],
      ['data', '250 2.0.0 queued', undefined],
    ];
    for (const [stage, reply, expected] of cases) {
      assert.equal(classify(reply, stage).failureKind, expected, `${stage}: ${reply}`);
    }
  });

  test('reports an expired lease as 4.4.7', () => {
    const verdict = localVerdict('leaseExpired', 'lease ran out before delivery');
    assert.equal(verdict.reply, '451 4.4.7 lease ran out before delivery');
    assert.equal(verdict.status, 'deferred');
  });
});

describe('self identity', () => {
  const interfaces = {
    eth0: [
      {
        address: '192.0.2.10',
        family: 'IPv4',
        netmask: '255.255.255.0',
        mac: '00:00:00:00:00:00',
        internal: false,
        cidr: null,
      },
      {
        address: '2001:db8::10',
        family: 'IPv6',
        netmask: 'ffff::',
        mac: '00:00:00:00:00:00',
        internal: false,
        cidr: null,
        scopeid: 0,
      },
    ],
  } as const;

  test('matches self names without case or trailing dot', () => {
    const self = new SelfIdentity(['mx2.example.net'], { host: '127.0.0.1', port: 25 }, {});
    assert.ok(self.isSelfName('MX2.Example.NET.'));
    assert.ok(!self.isSelfName('mx1.example.net'));
  });

  test('wildcard listener covers interfaces and loopback', () => {
    const self = new SelfIdentity([], { host: '0.0.0.0', port: 25 }, interfaces as never);
    assert.ok(self.isSelfAddress('192.0.2.10', 25));
    assert.ok(self.isSelfAddress('2001:db8::10', 25));
    assert.ok(self.isSelfAddress('127.0.0.53', 25));
    assert.ok(self.isSelfAddress('::1', 25));
    assert.ok(self.isSelfAddress('::ffff:127.0.0.1', 25));
    assert.ok(!self.isSelfAddress('127.0.0.1', 2525), 'another port is not ourselves');
    assert.ok(!self.isSelfAddress('192.0.2.11', 25));
  });

  test('specific listener covers only its address', () => {
    const self = new SelfIdentity([], { host: '127.0.0.1', port: 2525 }, interfaces as never);
    assert.ok(self.isSelfAddress('127.0.0.1', 2525));
    assert.ok(!self.isSelfAddress('127.0.0.2', 2525));
    assert.ok(!self.isSelfAddress('192.0.2.10', 2525));
  });
});
