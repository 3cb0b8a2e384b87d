import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildGreylistHeader } from '../src/greylist-header.ts';

test('X-Greylist names the delay, host and date', () => {
  const header = buildGreylistHeader(312, 'mx2.example.net', new Date('2026-12-04T10:00:00Z'));
  assert.equal(
    header.toString('utf8'),
    'X-Greylist: delayed 312 seconds by secondary-mx at mx2.example.net; Fri, 04 Dec 2026 10:00:00 +0000\r\n',
  );
});
