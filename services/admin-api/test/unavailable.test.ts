import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { migrate } from '@secondary-mx/db';
import { freePort, startTcpProxy } from '@secondary-mx/testkit';
import {
  AUTH,
  logger,
  recordControlEvents,
  registerDomain,
  startHarness,
  testDomain,
} from './support.ts';

describe('backends unavailable', () => {
  test('unreachable database gives 503 and keeps serving', async () => {
    const port = await freePort();
    const harness = await startHarness({
      databaseUrl: `postgres://postgres@127.0.0.1:${port}/absent`,
    });
    try {
      for (let i = 0; i < 2; i++) {
        const response = await harness.app.inject({
          method: 'GET',
          url: '/api/domains',
          headers: AUTH,
        });
        assert.equal(response.statusCode, 503);
        assert.equal(response.json().error, 'Service Unavailable');
        assert.match(response.json().message, /PostgreSQL is unavailable/);
      }

      const health = await harness.app.inject({ method: 'GET', url: '/health' });
      assert.equal(health.statusCode, 503);
      assert.deepEqual(health.json(), {
        status: 'unavailable',
        checks: { database: 'unreachable', rabbitmq: 'ok' },
      });

      const metrics = await harness.app.inject({ method: 'GET', url: '/metrics' });
      assert.equal(metrics.statusCode, 200);
      assert.match(metrics.body, /^secondary_mx_database_up 0$/m);
    } finally {
      await harness.close();
    }
  });

  test('missing schema gives 503 until migrated', async () => {
    const harness = await startHarness({ migrate: false });
    try {
      const list = await harness.app.inject({ method: 'GET', url: '/api/domains', headers: AUTH });
      assert.equal(list.statusCode, 503);
      assert.match(list.json().message, /schema is missing.*queue-store/);

      const request = await harness.app.inject({
        method: 'POST',
        url: '/api/domains',
        headers: AUTH,
        payload: { domain: testDomain('schema'), memberNumber: 'M-1' },
      });
      assert.equal(request.statusCode, 503);

      const health = await harness.app.inject({ method: 'GET', url: '/health' });
      assert.equal(health.statusCode, 503);
      assert.equal(health.json().checks.database, 'schema missing');

      await migrate(harness.database.url, logger);

      const after = await harness.app.inject({ method: 'GET', url: '/api/domains', headers: AUTH });
      assert.equal(after.statusCode, 200);
      const healthy = await harness.app.inject({ method: 'GET', url: '/health' });
      assert.equal(healthy.statusCode, 200);
    } finally {
      await harness.close();
    }
  });

  test('unreachable RabbitMQ still approves and fails health', async () => {
    const port = await freePort();
    const harness = await startHarness({ amqpUrl: `amqp://guest:guest@127.0.0.1:${port}` });
    try {
      const domain = await registerDomain(harness.app, testDomain('no-broker'));

      const approve = await harness.app.inject({
        method: 'POST',
        url: `/api/domains/${domain}/approve`,
        headers: AUTH,
      });
      assert.equal(approve.statusCode, 200);
      assert.equal(approve.json().domain.state, 'approved');

      const flush = await harness.app.inject({
        method: 'POST',
        url: `/api/domains/${domain}/flush`,
        headers: AUTH,
      });
      assert.equal(flush.statusCode, 200);

      const health = await harness.app.inject({ method: 'GET', url: '/health' });
      assert.equal(health.statusCode, 503);
      assert.deepEqual(health.json().checks, { database: 'ok', rabbitmq: 'disconnected' });
    } finally {
      await harness.close();
    }
  });

  test('change made before RabbitMQ connects is published after', async () => {
    // The paused proxy holds admin-api's connection half-open, as a broker still starting does.
    const proxy = await startTcpProxy('127.0.0.1', 5672);
    proxy.pause();
    const harness = await startHarness({ amqpUrl: `amqp://guest:guest@127.0.0.1:${proxy.port}` });
    const recorder = await recordControlEvents(harness.amqpPrefix);
    try {
      const domain = await registerDomain(harness.app, testDomain('late-broker'));
      const approve = await harness.app.inject({
        method: 'POST',
        url: `/api/domains/${domain}/approve`,
        headers: AUTH,
      });
      assert.equal(approve.statusCode, 200);
      assert.equal(harness.broker.connected, false);

      proxy.resume();
      const event = await recorder.waitFor(
        (e) => e.type === 'domains.changed' && e.domain === domain,
        10_000,
      );
      assert.deepEqual(event, { type: 'domains.changed', domain });
    } finally {
      await recorder.stop();
      await harness.close();
      await proxy.close();
    }
  });
});
