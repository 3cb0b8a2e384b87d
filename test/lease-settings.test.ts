/**
 * The services that grant or use leases stop at start when MX_LEASE_TIME is not larger than
 * MX_DELIVERY_TIMEOUT, with exit status 78 and a message that names both settings.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function startService(main: string) {
  return spawnSync(process.execPath, ['--import', 'tsx', main], {
    cwd: root,
    encoding: 'utf8',
    timeout: 20_000,
    env: {
      PATH: process.env.PATH,
      // Loopback only, although the settings check stops the service before any connection.
      AMQP_URL: 'amqp://guest:guest@127.0.0.1:1',
      DATABASE_URL: 'postgres://postgres@127.0.0.1:1/secondary_mx',
      MX_HOSTNAME: 'mx2.lease.test',
      MX_LEASE_TIME: '20s',
      MX_DELIVERY_TIMEOUT: '60s',
    },
  });
}

for (const [service, main] of [
  ['queue-store', 'services/queue-store/src/main.ts'],
  ['delivery-worker', 'services/delivery-worker/src/main.ts'],
]) {
  test(`${service} rejects a lease shorter than a delivery`, () => {
    const result = startService(main as string);
    assert.equal(result.status, 78, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(`^${service}: invalid settings:`, 'm'),
      'the message names the service',
    );
    assert.match(
      result.stderr,
      /MX_LEASE_TIME \(20s\) must be larger than MX_DELIVERY_TIMEOUT \(60s\)/,
    );
  });
}
