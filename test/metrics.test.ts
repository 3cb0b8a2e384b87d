/**
 * Metrics and health of the five services as separate processes: one message goes through
 * the whole chain and shows up in the counters of every service, then RabbitMQ goes away and
 * every /health turns 503 naming it. RabbitMQ is reached through a TCP proxy, so closing the
 * proxy cuts it off for these processes alone. The container health check script
 * (deploy/healthcheck.mjs) runs against the same listeners.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  type FakePrimary,
  fetchHealth,
  freePort,
  LOCAL_AMQP_URL,
  metricValue,
  type ServiceName,
  SmtpClient,
  type Suite,
  scrapeMetrics,
  startDnsServer,
  startFakePrimary,
  startSuite,
  startTcpProxy,
  type TcpProxy,
  type TestDnsServer,
  waitForHealth,
} from '@secondary-mx/testkit';

const root = fileURLToPath(new URL('..', import.meta.url));

const LISTEN_SETTINGS: Record<Exclude<ServiceName, 'admin-api'>, string> = {
  ingress: 'MX_INGRESS_METRICS_LISTEN',
  greylist: 'MX_GREYLIST_METRICS_LISTEN',
  'queue-store': 'MX_QUEUE_STORE_METRICS_LISTEN',
  'delivery-worker': 'MX_DELIVERY_METRICS_LISTEN',
};
type ListenedService = keyof typeof LISTEN_SETTINGS;
const SERVICES = Object.keys(LISTEN_SETTINGS) as ListenedService[];

let suite: Suite;
let dns: TestDnsServer;
let primary: FakePrimary;
let amqpProxy: TcpProxy;
const ports = {} as Record<ListenedService, number>;

async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${suite.logs()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Runs deploy/healthcheck.mjs for a service with the suite's settings; returns its exit status.
 * Not spawnSync: the RabbitMQ proxy runs in this process and must keep forwarding meanwhile.
 */
async function runHealthcheck(service: ServiceName): Promise<{ status: number; output: string }> {
  const child = spawn(process.execPath, ['deploy/healthcheck.mjs', service], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', ...suite.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  const [status] = (await once(child, 'exit')) as [number | null];
  return { status: status ?? -1, output };
}

async function sendMessage(recipient: string): Promise<void> {
  const { client } = await SmtpClient.connect(suite.smtpPort);
  try {
    assert.equal((await client.command('EHLO client.sender.example')).code, 250);
    assert.equal((await client.command('MAIL FROM:<alice@sender.example>')).code, 250);
    const rcpt = await client.command(`RCPT TO:<${recipient}>`);
    assert.equal(rcpt.code, 250, rcpt.text);
    assert.equal((await client.command('DATA')).code, 354);
    client.write('Subject: metrics\r\n\r\nbody\r\n.\r\n');
    const queued = await client.read();
    assert.equal(queued.code, 250, queued.text);
    await client.command('QUIT');
  } finally {
    client.close();
  }
}

before(async () => {
  primary = await startFakePrimary();
  dns = await startDnsServer({
    'sender.example': { MX: [{ preference: 10, exchange: 'mx.sender.example' }] },
  });
  const amqp = new URL(LOCAL_AMQP_URL);
  amqpProxy = await startTcpProxy(amqp.hostname, Number(amqp.port || 5672));
  amqp.hostname = '127.0.0.1';
  amqp.port = String(amqpProxy.port);
  const listeners: Record<string, string> = {};
  for (const service of SERVICES) {
    ports[service] = await freePort();
    listeners[LISTEN_SETTINGS[service]] = `127.0.0.1:${ports[service]}`;
  }
  suite = await startSuite({
    env: {
      ...listeners,
      AMQP_URL: amqp.toString(),
      DNS_SERVERS: dns.server,
      MX_PREGREET_WAIT: '0s',
      // Greylisting stays on, but the first attempt passes, so the verdict is counted.
      MX_GREYLIST_DELAY: '0s',
      MX_SCHEDULER_INTERVAL: '200ms',
      MX_DOMAIN_REFRESH: '1m',
    },
  });
});

after(async () => {
  await suite?.stop();
  await amqpProxy?.close();
  await primary?.stop();
  await dns?.close();
});

test('every service reports healthy', async () => {
  for (const service of SERVICES) {
    const health = await waitForHealth(ports[service], 200);
    assert.equal(health.body.status, 'ok', service);
  }
  assert.deepEqual((await fetchHealth(ports.ingress)).body.checks, {
    rabbitmq: 'ok',
    'queue-store': 'ok',
    domains: 'ok',
  });
  assert.deepEqual((await fetchHealth(ports.greylist)).body.checks, {
    redis: 'ok',
    rabbitmq: 'ok',
  });
  assert.deepEqual((await fetchHealth(ports['queue-store'])).body.checks, {
    database: 'ok',
    rabbitmq: 'ok',
  });
  assert.deepEqual((await fetchHealth(ports['delivery-worker'])).body.checks, { rabbitmq: 'ok' });

  for (const service of [...SERVICES, 'admin-api'] as const) {
    const check = await runHealthcheck(service);
    assert.equal(check.status, 0, `${service}: ${check.output}`);
  }
});

test('one message shows in every service', async () => {
  const created = await suite.api('POST', '/api/domains', {
    domain: 'member.example',
    memberNumber: '1001',
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal((await suite.api('POST', '/api/domains/member.example/approve')).status, 200);
  const patched = await suite.api('PATCH', '/api/domains/member.example', {
    primaryHosts: [primary.address],
  });
  assert.equal(patched.status, 200, JSON.stringify(patched.body));
  await suite.waitUntilRelayed('member.example');

  const ingressBefore = await scrapeMetrics(ports.ingress);
  const sessionsBefore = metricValue(ingressBefore, 'secondary_mx_smtp_sessions_total') ?? 0;
  const queuedBefore = metricValue(ingressBefore, 'secondary_mx_smtp_replies_total{code="354"}');
  const checksBefore =
    metricValue(
      await scrapeMetrics(ports.greylist),
      'secondary_mx_greylist_checks_total{result="pass",reason="no-delay"}',
    ) ?? 0;

  await sendMessage('bob@member.example');
  await primary.waitForMessages(1, 15_000);

  const spoolDelivered = 'secondary_mx_spool_recipients{domain="member.example",state="delivered"}';
  await until('queue-store to record the delivery', async () => {
    const text = await scrapeMetrics(ports['queue-store']);
    return metricValue(text, spoolDelivered) === 1;
  });

  const ingress = await scrapeMetrics(ports.ingress);
  assert.equal(metricValue(ingress, 'secondary_mx_smtp_sessions_total'), sessionsBefore + 1);
  assert.equal(
    metricValue(ingress, 'secondary_mx_smtp_replies_total{code="354"}'),
    (queuedBefore ?? 0) + 1,
  );
  assert.ok((metricValue(ingress, 'secondary_mx_smtp_replies_total{code="220"}') ?? 0) >= 1);
  assert.ok((metricValue(ingress, 'secondary_mx_smtp_replies_total{code="250"}') ?? 0) >= 5);
  assert.equal(metricValue(ingress, 'secondary_mx_smtp_replies_total{code="221"}'), 1);
  assert.equal(metricValue(ingress, 'secondary_mx_rabbitmq_up'), 1);
  assert.equal(
    metricValue(ingress, 'secondary_mx_greylist_verdicts_total{result="pass",reason="no-delay"}'),
    checksBefore + 1,
    'ingress counts the verdicts it received',
  );

  const greylist = await scrapeMetrics(ports.greylist);
  assert.equal(
    metricValue(greylist, 'secondary_mx_greylist_checks_total{result="pass",reason="no-delay"}'),
    checksBefore + 1,
  );
  assert.equal(metricValue(greylist, 'secondary_mx_redis_up'), 1);

  const queueStore = await scrapeMetrics(ports['queue-store']);
  assert.equal(metricValue(queueStore, 'secondary_mx_messages_stored_total'), 1);
  assert.equal(metricValue(queueStore, spoolDelivered), 1);
  assert.equal(
    metricValue(
      queueStore,
      'secondary_mx_spool_recipients{domain="member.example",state="queued"}',
    ),
    0,
    'every state of a member domain is reported, 0 included',
  );
  assert.equal(
    metricValue(queueStore, 'secondary_mx_spool_oldest_waiting_seconds{kind="mail"}'),
    0,
  );
  assert.equal(metricValue(queueStore, 'secondary_mx_database_up'), 1);
  assert.equal(metricValue(queueStore, 'secondary_mx_dsns_total{event="failed"}'), 0);

  const worker = await scrapeMetrics(ports['delivery-worker']);
  assert.equal(
    metricValue(
      worker,
      'secondary_mx_delivery_attempts_total{result="delivered",failure_kind="none"}',
    ),
    1,
  );
  assert.equal(metricValue(worker, 'secondary_mx_delivery_job_duration_seconds_count'), 1);
});

test('without RabbitMQ every health is 503', async () => {
  await amqpProxy.close();

  const ingress = await waitForHealth(ports.ingress, 503);
  assert.deepEqual(ingress.body, {
    status: 'unavailable',
    checks: { rabbitmq: 'disconnected', 'queue-store': 'unknown', domains: 'ok' },
  });
  const greylist = await waitForHealth(ports.greylist, 503);
  assert.deepEqual(greylist.body.checks, { redis: 'ok', rabbitmq: 'disconnected' });
  const queueStore = await waitForHealth(ports['queue-store'], 503);
  assert.deepEqual(queueStore.body.checks, { database: 'ok', rabbitmq: 'disconnected' });
  const worker = await waitForHealth(ports['delivery-worker'], 503);
  assert.deepEqual(worker.body.checks, { rabbitmq: 'disconnected' });

  for (const service of SERVICES) {
    const text = await scrapeMetrics(ports[service]);
    assert.equal(metricValue(text, 'secondary_mx_rabbitmq_up'), 0, service);
    const lost = metricValue(text, 'secondary_mx_rabbitmq_errors_total{kind="connection"}');
    assert.ok((lost ?? 0) >= 1, `${service} counts the lost connection`);
  }

  const check = await runHealthcheck('ingress');
  assert.equal(check.status, 1, check.output);
  assert.match(check.output, /"rabbitmq":"disconnected"/);
});
