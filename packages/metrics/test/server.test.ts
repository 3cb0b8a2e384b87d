import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { createLogger } from '@secondary-mx/logger';
import { freePort } from '@secondary-mx/testkit';
import { Counter, Registry } from 'prom-client';
import { registerBackendMetrics, startMetricsServer } from '../src/index.ts';

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

test('health returns 200 when every check is ok', async () => {
  const server = await startMetricsServer(new Registry(), { host: '127.0.0.1', port: 0 }, logger, {
    rabbitmq: () => 'ok',
    database: async () => 'ok',
  });
  try {
    assert.notEqual(server.address.port, 0, 'port 0 reports the bound port');
    const response = await fetch(`http://127.0.0.1:${server.address.port}/health`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/json');
    assert.deepEqual(await response.json(), {
      status: 'ok',
      checks: { rabbitmq: 'ok', database: 'ok' },
    });
  } finally {
    await server.close();
  }
});

test('health returns 503 naming what is missing', async () => {
  let rabbitmq = 'disconnected';
  const server = await startMetricsServer(new Registry(), { host: '127.0.0.1', port: 0 }, logger, {
    rabbitmq: () => rabbitmq,
    database: async () => 'ok',
    redis: () => {
      throw new Error('no client');
    },
  });
  const url = `http://127.0.0.1:${server.address.port}/health`;
  try {
    const down = await fetch(url);
    assert.equal(down.status, 503);
    assert.deepEqual(await down.json(), {
      status: 'unavailable',
      checks: { rabbitmq: 'disconnected', database: 'ok', redis: 'failed' },
    });

    const head = await fetch(url, { method: 'HEAD' });
    assert.equal(head.status, 503);
    assert.equal(await head.text(), '');

    rabbitmq = 'ok';
    const stillDown = await fetch(url);
    assert.equal(stillDown.status, 503, 'the throwing check keeps it unavailable');
    await stillDown.text();
  } finally {
    await server.close();
  }
});

test('health reports a slow check as timed out', async () => {
  const server = await startMetricsServer(new Registry(), { host: '127.0.0.1', port: 0 }, logger, {
    database: () => new Promise<string>(() => undefined),
  });
  try {
    const started = Date.now();
    const response = await fetch(`http://127.0.0.1:${server.address.port}/health`);
    assert.equal(response.status, 503);
    assert.deepEqual(await response.json(), {
      status: 'unavailable',
      checks: { database: 'timed out' },
    });
    assert.ok(Date.now() - started < 5000, 'the check is cut off after about 3 s');
  } finally {
    await server.close();
  }
});

test('health without checks returns 200', async () => {
  const server = await startMetricsServer(new Registry(), { host: '127.0.0.1', port: 0 }, logger);
  try {
    const response = await fetch(`http://127.0.0.1:${server.address.port}/health`);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { status: 'ok', checks: {} });
    const post = await fetch(`http://127.0.0.1:${server.address.port}/health`, { method: 'POST' });
    assert.equal(post.status, 405);
    await post.text();
  } finally {
    await server.close();
  }
});

test('backend metrics start every error kind at 0', async () => {
  const registry = new Registry();
  let up = true;
  const countError = registerBackendMetrics(registry, {
    backend: 'redis',
    upMeaning: 'connected to Redis',
    errorMeaning: 'Redis failures',
    errorKinds: ['connection', 'command'],
    isUp: () => up,
  });
  countError('command');
  const text = await registry.metrics();
  assert.match(text, /^secondary_mx_redis_up 1$/m);
  assert.match(text, /^secondary_mx_redis_errors_total\{kind="connection"\} 0$/m);
  assert.match(text, /^secondary_mx_redis_errors_total\{kind="command"\} 1$/m);
  up = false;
  assert.match(await registry.metrics(), /^secondary_mx_redis_up 0$/m);
});
