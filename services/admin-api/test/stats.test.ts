import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { newQueueId } from '@secondary-mx/contracts';
import { insertMessage } from '@secondary-mx/db';
import {
  AUTH,
  createTokenHeader,
  type Harness,
  registerDomain,
  startHarness,
  storeMessage,
  testDomain,
} from './support.ts';

let harness: Harness;

before(async () => {
  harness = await startHarness();
});

after(async () => {
  await harness.close();
});

const HOUR_MS = 3_600_000;

async function setState(address: string, state: string): Promise<void> {
  await harness.pool.query('UPDATE recipients SET state = $2::recipient_state WHERE address = $1', [
    address,
    state,
  ]);
}

/** Records a delivery attempt of the recipient `ageMinutes` ago. */
async function attempt(address: string, status: string, ageMinutes: number): Promise<void> {
  await harness.pool.query(
    `INSERT INTO delivery_attempts (recipient_id, attempted_at, status, reply)
     SELECT id, now() - make_interval(mins => $3), $2, 'reply' FROM recipients WHERE address = $1`,
    [address, status, ageMinutes],
  );
}

/** Stores a DSN about `dsnOf`, received `ageMinutes` ago. */
async function storeDsn(dsnOf: string, ageMinutes: number): Promise<void> {
  const receivedAt = new Date(Date.now() - ageMinutes * 60_000);
  await insertMessage(harness.pool, {
    queueId: newQueueId(receivedAt.getTime()),
    sender: '',
    recipients: [
      {
        envelope: { address: 'sender@origin.example', notify: ['NEVER'] },
        domain: 'origin.example',
      },
    ],
    body: Buffer.from('Subject: dsn\r\n\r\nreport\r\n'),
    bodyType: '7BIT',
    smtpUtf8: false,
    clientAddress: '127.0.0.1',
    receivedAt,
    expiresAt: new Date(receivedAt.getTime() + 5 * 24 * HOUR_MS),
    kind: 'dsn',
    dsnOf,
  });
}

describe('GET /api/stats', () => {
  test('counts states, domains, oldest age and activity', async () => {
    const first = await registerDomain(harness.app, testDomain('stats-a'));
    const second = testDomain('stats-b');
    const old = await storeMessage(harness.pool, [`a1@${first}`, `b1@${second}`], {
      receivedAt: new Date(Date.now() - 2 * HOUR_MS),
    });
    await storeMessage(harness.pool, [`a2@${first}`, `a3@${first}`]);
    const third = await storeMessage(harness.pool, [`b2@${second}`], {
      receivedAt: new Date(Date.now() - 5 * HOUR_MS),
    });
    await setState(`a1@${first}`, 'deferred');
    await setState(`a3@${first}`, 'delivered');
    await setState(`b1@${second}`, 'failed');
    // Held mail is not waiting, so it does not set the oldest age.
    await setState(`b2@${second}`, 'hold');
    await attempt(`a1@${first}`, 'deferred', 30);
    await attempt(`a1@${first}`, 'deferred', 5 * 60);
    await attempt(`a3@${first}`, 'delivered', 10);
    await attempt(`b1@${second}`, 'failed', 20);
    await attempt(`b1@${second}`, 'delivered', 3 * 24 * 60);
    await storeDsn(old, 15);
    await storeDsn(third, 3 * 60);

    const response = await harness.app.inject({ method: 'GET', url: '/api/stats', headers: AUTH });

    assert.equal(response.statusCode, 200, response.body);
    const stats = response.json();
    // The two DSNs have a queued recipient each, in origin.example.
    assert.deepEqual(stats.states, {
      queued: 3,
      active: 0,
      deferred: 1,
      hold: 1,
      delivered: 1,
      failed: 1,
      expired: 0,
    });
    const firstStats = stats.domains.find((entry: { domain: string }) => entry.domain === first);
    assert.deepEqual(firstStats?.states, {
      queued: 1,
      active: 0,
      deferred: 1,
      hold: 0,
      delivered: 1,
      failed: 0,
      expired: 0,
    });
    assert.deepEqual(
      stats.domains.map((entry: { domain: string }) => entry.domain).sort(),
      [first, second, 'origin.example'].sort(),
    );
    // The DSN of 3 hours ago is the oldest waiting message; the held one of 5 hours is not.
    assert.ok(
      stats.oldestWaitingAgeSeconds >= 10_790 && stats.oldestWaitingAgeSeconds < 11_000,
      `oldest waiting is 3 hours old, not ${stats.oldestWaitingAgeSeconds} s`,
    );
    assert.deepEqual(stats.lastHour, { delivered: 1, failed: 1, deferred: 1, dsns: 1 });
    assert.deepEqual(stats.lastDay, { delivered: 1, failed: 1, deferred: 2, dsns: 2 });
  });

  test('member sees its own domain only', async () => {
    const domain = await registerDomain(harness.app, testDomain('stats-member'));
    const member = await createTokenHeader(harness.app, 'member', domain);
    const id = await storeMessage(harness.pool, [`m1@${domain}`, `m2@${testDomain('stats-x')}`]);
    await attempt(`m1@${domain}`, 'deferred', 1);
    await setState(`m1@${domain}`, 'deferred');
    await storeDsn(id, 1);

    const response = await harness.app.inject({
      method: 'GET',
      url: '/api/stats',
      headers: member,
    });

    assert.equal(response.statusCode, 200);
    const stats = response.json();
    assert.deepEqual(
      stats.domains.map((entry: { domain: string }) => entry.domain),
      [domain],
    );
    assert.equal(stats.states.deferred, 1);
    assert.equal(stats.states.queued, 0, "another domain's recipient is not counted");
    assert.deepEqual(stats.lastHour, { delivered: 0, failed: 0, deferred: 1, dsns: 1 });
    assert.ok(stats.oldestWaitingAgeSeconds < 60);
  });

  test('empty spool has null oldest age', async () => {
    const domain = await registerDomain(harness.app, testDomain('stats-empty'));
    const member = await createTokenHeader(harness.app, 'member', domain);

    const response = await harness.app.inject({
      method: 'GET',
      url: '/api/stats',
      headers: member,
    });

    const stats = response.json();
    assert.equal(stats.oldestWaitingAgeSeconds, null);
    assert.deepEqual(stats.domains, []);
    assert.equal(stats.states.queued, 0);
  });
});
