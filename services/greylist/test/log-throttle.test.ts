import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { throttle } from '../src/log-throttle.ts';

test('throttle emits once per interval', async () => {
  const emitted: number[] = [];
  const event = throttle(200, (suppressed) => emitted.push(suppressed));

  event();
  event();
  event();
  assert.deepEqual(emitted, [0]);

  await sleep(250);
  event();
  assert.deepEqual(emitted, [0, 2]);
});
