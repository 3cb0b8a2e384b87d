import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { createLogger } from '@secondary-mx/logger';
import { freePort } from '@secondary-mx/testkit';
import { Counter, Registry } from 'prom-client';
import { startMetricsServer } from '../src/index.ts';

const logger = createLogger('metrics-test', 'silent');

test('metrics server serves the registry', async () => {
  const registry = new Registry();
  const counter = new Counter({
    name: 'test_events_total',
    help: 'Events in this test.',
    labelNames: ['kind'],
    registers: [registry],
  });
  counter.inc({ kind: 'a' }, 3);
  const port = await freePort();
  const server = await startMetricsServer(registry, { host: '127.0.0.1', port }, logger);
  try {
    assert.deepEqual(server.address, { host: '127.0.0.1', port });
    const response = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), registry.contentType);
    assert.match(await response.text(), /^test_events_total\{kind="a"\} 3$/m);

    const other = await fetch(`http://127.0.0.1:${port}/other`);
    assert.equal(other.status, 404);
    await other.text();
  } finally {
    await server.close();
  }
});

test('metrics server rejects a port in use', async () => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const address = blocker.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  try {
    await assert.rejects(
      startMetricsServer(new Registry(), { host: '127.0.0.1', port }, logger),
      /EADDRINUSE/,
    );
  } finally {
    await new Promise((resolve) => blocker.close(resolve));
  }
});
