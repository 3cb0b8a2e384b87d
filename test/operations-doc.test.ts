import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Broker } from '@secondary-mx/amqp';
import { createPool } from '@secondary-mx/db';
import { createLogger } from '@secondary-mx/logger';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { createAdminMetrics } from '../services/admin-api/src/metrics.ts';
import { createWorkerMetrics } from '../services/delivery-worker/src/metrics.ts';
import { createGreylistMetrics } from '../services/greylist/src/metrics.ts';
import { createIngressMetrics } from '../services/ingress/src/metrics.ts';
import { createQueueStoreMetrics } from '../services/queue-store/src/metrics.ts';

const operations = readFileSync(new URL('../docs/operations.md', import.meta.url), 'utf8');

function names(registry: Registry): string[] {
  return registry.getMetricsAsArray().map((metric) => (metric as unknown as { name: string }).name);
}

test('operations guide documents every metric', async () => {
  const logger = createLogger('operations-doc-test', 'silent');
  // Neither connects: the metrics are only registered, never collected.
  const pool = createPool('postgres://postgres@127.0.0.1:1/unused', logger);
  const broker = new Broker({
    url: 'amqp://guest:guest@127.0.0.1:1',
    prefix: '',
    logger,
    connectionName: 'operations-doc-test',
  });
  const registries = {
    ingress: createIngressMetrics({
      activeSessions: () => 0,
      rabbitmqConnected: () => false,
      redisReady: () => false,
    }).registry,
    greylist: createGreylistMetrics({ rabbitmqConnected: () => false, redisReady: () => false })
      .registry,
    'queue-store': createQueueStoreMetrics({ pool, broker, logger }).registry,
    'delivery-worker': createWorkerMetrics({ rabbitmqConnected: () => false }).registry,
    'admin-api': createAdminMetrics(pool, broker).registry,
  };
  await pool.end();

  const defaults = new Registry();
  collectDefaultMetrics({ register: defaults });
  const defaultNames = new Set(names(defaults));

  const missing: string[] = [];
  for (const [service, registry] of Object.entries(registries)) {
    const own = names(registry).filter((name) => !defaultNames.has(name));
    assert.ok(own.length > 0, `${service} registers metrics of its own`);
    for (const name of own) {
      if (!operations.includes(`\`${name}\``)) {
        missing.push(`${service}: ${name}`);
      }
    }
  }
  assert.deepEqual(missing, []);
});
