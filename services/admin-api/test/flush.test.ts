import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  AUTH,
  type EventRecorder,
  type Harness,
  recordControlEvents,
  registerDomain,
  startHarness,
  storeMessage,
  testDomain,
} from './support.ts';

let harness: Harness;
let recorder: EventRecorder;

before(async () => {
  harness = await startHarness();
  recorder = await recordControlEvents(harness.amqpPrefix);
});

after(async () => {
  await recorder.stop();
  await harness.close();
});

const LATER = "now() + interval '1 hour'";

async function setState(address: string, state: string): Promise<void> {
  await harness.pool.query(
    `UPDATE recipients SET state = $2, next_attempt_at = ${LATER} WHERE address = $1`,
    [address, state],
  );
}

async function isDue(address: string): Promise<boolean> {
  const result = await harness.pool.query<{ due: boolean }>(
    'SELECT next_attempt_at <= now() AS due FROM recipients WHERE address = $1',
    [address],
  );
  return result.rows[0]?.due ?? false;
}

describe('POST /api/domains/:domain/flush', () => {
  test('flush schedules waiting recipients only', async () => {
    const domain = await registerDomain(harness.app, testDomain('flush'));
    const other = testDomain('flush-other');
    const states = ['queued', 'deferred', 'hold', 'delivered', 'failed', 'active'];
    await storeMessage(harness.pool, [
      ...states.map((state) => `${state}@${domain}`),
      `queued@${other}`,
    ]);
    for (const state of states) {
      await setState(`${state}@${domain}`, state);
    }
    await setState(`queued@${other}`, 'queued');

    const response = await harness.app.inject({
      method: 'POST',
      url: `/api/domains/${domain}/flush`,
      headers: AUTH,
    });

    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { domain, scheduled: 2 });
    assert.equal(await isDue(`queued@${domain}`), true);
    assert.equal(await isDue(`deferred@${domain}`), true);
    assert.equal(await isDue(`hold@${domain}`), false);
    assert.equal(await isDue(`delivered@${domain}`), false);
    assert.equal(await isDue(`failed@${domain}`), false);
    assert.equal(await isDue(`active@${domain}`), false);
    assert.equal(await isDue(`queued@${other}`), false);
    const event = await recorder.waitFor((e) => e.type === 'flush' && e.domain === domain);
    assert.deepEqual(event, { type: 'flush', domain });
  });

  test('flush without waiting recipients schedules none', async () => {
    const domain = await registerDomain(harness.app, testDomain('flush-empty'));
    const response = await harness.app.inject({
      method: 'POST',
      url: `/api/domains/${domain.toUpperCase()}/flush`,
      headers: AUTH,
    });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { domain, scheduled: 0 });
  });

  test('flush of unknown domain is 404', async () => {
    const response = await harness.app.inject({
      method: 'POST',
      url: `/api/domains/${testDomain('flush-unknown')}/flush`,
      headers: AUTH,
    });
    assert.equal(response.statusCode, 404);
  });
});
