import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MessageScanner, messageViolation, type ScanResult } from '../src/message-scanner.ts';

/** Scans the text split into chunks at every given offset. */
function scanSplit(text: string, offsets: number[]): ScanResult {
  const bytes = Buffer.from(text, 'latin1');
  const scanner = new MessageScanner();
  let start = 0;
  for (const offset of [...offsets, bytes.length]) {
    scanner.scan(bytes.subarray(start, offset));
    start = offset;
  }
  return scanner.finish();
}

/** Scans the text at every possible single split point and checks that all results agree. */
function scanEverySplit(text: string): ScanResult {
  const whole = scanSplit(text, []);
  for (let offset = 1; offset < text.length; offset++) {
    assert.deepEqual(scanSplit(text, [offset]), whole, `split at ${offset}`);
  }
  return whole;
}

describe('MessageScanner', () => {
  test('clean message has no findings', () => {
    const result = scanEverySplit('Subject: x\r\n\r\nbody\r\n');
    assert.equal(result.bareLineEndingLine, undefined);
    assert.equal(result.longLine, undefined);
    assert.equal(result.receivedFields, 0);
  });

  const bare: [string, number][] = [
    ['a\nb\r\n', 1],
    ['a\r\nb\rc\r\n', 2],
    ['a\r\n.\r\n\r', 3],
    ['a\r\n\n', 2],
    ['a\r\r\n', 1],
  ];
  for (const [text, line] of bare) {
    test(`bare line ending in ${JSON.stringify(text)} is on line ${line}`, () => {
      assert.equal(scanEverySplit(text).bareLineEndingLine, line);
    });
  }

  test('line length counts the CRLF', () => {
    assert.equal(scanEverySplit(`${'x'.repeat(998)}\r\n`).longLine, undefined);
    assert.deepEqual(scanEverySplit(`a\r\n${'x'.repeat(999)}\r\n`).longLine, {
      line: 2,
      octets: 1001,
    });
  });

  test('a last line without CRLF is measured too', () => {
    assert.deepEqual(scanSplit(`${'x'.repeat(999)}`, []).longLine, { line: 1, octets: 1001 });
  });

  test('Received: fields are counted in the header only', () => {
    const text =
      'Received: a\r\nRECEIVED : b\r\n\tcontinued\r\nX-Received: c\r\n\r\nReceived: d\r\n';
    assert.equal(scanEverySplit(text).receivedFields, 2);
  });
});

describe('messageViolation', () => {
  const clean: ScanResult = {
    bareLineEndingLine: undefined,
    longLine: undefined,
    receivedFields: 3,
  };

  test('bare line endings come first', () => {
    const error = messageViolation(
      { bareLineEndingLine: 4, longLine: { line: 2, octets: 2000 }, receivedFields: 99 },
      3,
    );
    assert.equal(error?.message, '5.6.0 bare CR or LF in line 4: every line must end with CRLF');
  });

  test('hop count below the limit passes', () => {
    // Three fields and ours make four.
    assert.equal(messageViolation(clean, 4), undefined);
  });

  test('hop count at the limit gets 554 5.4.6', () => {
    const error = messageViolation(clean, 3) as Error & { responseCode: number };
    assert.equal(error.responseCode, 554);
    assert.match(error.message, /^5\.4\.6 too many hops: 3 Received: header fields/);
  });
});
