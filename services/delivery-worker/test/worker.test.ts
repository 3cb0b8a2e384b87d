import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { Broker } from '@secondary-mx/amqp';
import { loadSettings } from '@secondary-mx/config';
import {
  type DeliveryJob,
  type DeliveryResult,
  DeliveryResultSchema,
  encodeFrame,
  QUEUE,
} from '@secondary-mx/contracts';
import {
  deleteQueues,
  type FakePrimary,
  freePort,
  LOCAL_AMQP_URL,
  purgeQueue,
  startDnsServer,
  startFakePrimary,
  type TestDnsServer,
  testEnvironment,
} from '@secondary-mx/testkit';
import { SETTING_NAMES } from '../src/settings.ts';
import { type DeliveryWorker, startWorker } from '../src/worker.ts';
import { type LogLine, recordingLogger, waitFor } from './support.ts';

const BODY_MARKER = 'secret-body-text-never-logged';
const PAYLOAD = Buffer.from(
  `Subject: test\r\nFrom: alice@sender.test\r\n\r\n${BODY_MARKER}\r\n`,
  'ascii',
);

const environment = testEnvironment('dw');
let dns: TestDnsServer;
let primary: FakePrimary;
let broker: Broker;
let env: Record<string, string>;
const results: DeliveryResult[] = [];
const workers: DeliveryWorker[] = [];
let jobCounter = 0;

function makeJob(overrides: Partial<DeliveryJob> = {}): DeliveryJob {
  jobCounter += 1;
  return {
    leaseId: `lease-${jobCounter}`,
    leaseUntil: Date.now() + 60_000,
    queueId: `QUEUE${String(jobCounter).padStart(4, '0')}`,
    domain: 'member.test',
    sender: 'alice@sender.test',
    recipients: [{ id: `rcpt-${jobCounter}`, address: `user${jobCounter}@member.test` }],
    bodyType: '7BIT',
    smtpUtf8: false,
    primaryHosts: [],
    ...overrides,
  };
}

async function runWorker(
  lines: LogLine[],
  extra: Record<string, string> = {},
): Promise<DeliveryWorker> {
  const settings = loadSettings(SETTING_NAMES, { ...env, ...extra });
  const worker = await startWorker(settings, recordingLogger(lines), {
    pool: { idleTimeoutMs: 1000 },
  });
  workers.push(worker);
  return worker;
}

async function stopWorkers(): Promise<void> {
  await Promise.all(workers.splice(0).map((worker) => worker.stop()));
}

function publishJob(job: unknown, payload = PAYLOAD): Promise<void> {
  return broker.publish(QUEUE.deliveryJobs, encodeFrame(job, payload));
}

function resultFor(leaseId: string): DeliveryResult | undefined {
  return results.find((result) => result.leaseId === leaseId);
}

before(async () => {
  primary = await startFakePrimary();
  dns = await startDnsServer({
    'member.test': {
      MX: [
        { preference: 10, exchange: 'primary.member.test' },
        { preference: 20, exchange: 'mx2.ourmx.test' },
      ],
    },
    'primary.member.test': { A: ['127.0.0.1'] },
    'nullmx.test': { MX: [{ preference: 0, exchange: '.' }] },
    'slow.test': {},
  });
  dns.setFailure('slow.test', 'no-response');
  env = {
    AMQP_URL: LOCAL_AMQP_URL,
    MX_AMQP_PREFIX: environment.amqpPrefix,
    MX_HOSTNAME: 'mx2.ourmx.test',
    MX_SELF_NAMES: 'mx2.ourmx.test',
    MX_SMTP_LISTEN: `127.0.0.1:${await freePort()}`,
    MX_DELIVERY_PORT: String(primary.port),
    MX_DELIVERY_CONCURRENCY: '5',
    MX_DELIVERY_TIMEOUT: '10s',
    MX_CONNECT_TIMEOUT: '2s',
    DNS_SERVERS: dns.server,
    MX_LOG_LEVEL: 'info',
  };
  broker = new Broker({
    url: LOCAL_AMQP_URL,
    prefix: environment.amqpPrefix,
    logger: recordingLogger([]),
    connectionName: 'delivery-worker test',
  });
  broker.consume(
    QUEUE.deliveryResults,
    async (message) => {
      results.push(DeliveryResultSchema.parse(JSON.parse(message.content.toString('utf8'))));
    },
    { prefetch: 100 },
  );
  await broker.start();
});

beforeEach(() => {
  primary.onRcpt = () => undefined;
  primary.onData = () => undefined;
});

afterEach(async () => {
  await stopWorkers();
  // A job left over from one test must not reach the next test's worker.
  await purgeQueue(broker.name(QUEUE.deliveryJobs));
});

after(async () => {
  await stopWorkers();
  await broker.stop();
  await deleteQueues([QUEUE.deliveryJobs, QUEUE.deliveryResults].map((name) => broker.name(name)));
  await primary.stop();
  await dns.close();
});

describe('delivery worker', () => {
  test('publishes the result of a job', async () => {
    primary.onRcpt = (address) =>
      address.startsWith('nouser') ? { code: 550, message: '5.1.1 No such user' } : undefined;
    const lines: LogLine[] = [];
    await runWorker(lines);
    const job = makeJob({
      recipients: [
        { id: 'rcpt-ok', address: 'ok@member.test' },
        { id: 'rcpt-nouser', address: 'nouser@member.test' },
      ],
    });
    await publishJob(job);
    await waitFor(() => resultFor(job.leaseId) !== undefined, 'the delivery result');
    await stopWorkers();

    const result = resultFor(job.leaseId);
    assert.ok(result);
    assert.equal(result.queueId, job.queueId);
    assert.equal(result.domain, 'member.test');
    assert.ok(Math.abs(result.attemptedAt - Date.now()) < 30_000);
    const ok = result.outcomes.find((outcome) => outcome.recipientId === 'rcpt-ok');
    const nouser = result.outcomes.find((outcome) => outcome.recipientId === 'rcpt-nouser');
    assert.equal(ok?.status, 'delivered');
    assert.equal(ok?.remoteMta, 'primary.member.test');
    assert.equal(nouser?.status, 'failed');
    assert.equal(nouser?.reply, '550 5.1.1 No such user');
    assert.equal(nouser?.enhancedCode, '5.1.1');

    const received = primary.messages.find((message) => message.rcptTo.includes('ok@member.test'));
    assert.ok(received?.raw.equals(PAYLOAD));

    const attempts = lines.filter((line) => line.queueId === job.queueId && 'status' in line);
    assert.equal(attempts.length, 2);
    const logged = attempts.find((line) => line.recipient === 'nouser@member.test');
    assert.equal(logged?.domain, 'member.test');
    assert.equal(logged?.relay, `primary.member.test[127.0.0.1]:${primary.port}`);
    assert.equal(logged?.status, 'failed');
    assert.equal(logged?.reply, '550 5.1.1 No such user');
    assert.equal(typeof logged?.durationMs, 'number');
    assert.ok(!JSON.stringify(lines).includes(BODY_MARKER), 'a log line contains the message body');
  });

  test('publishes a null MX as failed', async () => {
    await runWorker([]);
    const job = makeJob({
      domain: 'nullmx.test',
      recipients: [{ id: 'rcpt-null', address: 'a@nullmx.test' }],
    });
    await publishJob(job);
    await waitFor(() => resultFor(job.leaseId) !== undefined, 'the delivery result');
    await stopWorkers();
    const outcome = resultFor(job.leaseId)?.outcomes[0];
    assert.equal(outcome?.status, 'failed');
    assert.equal(outcome?.enhancedCode, '5.1.10');
  });

  test('defers a job when DNS times out', async () => {
    await runWorker([], { MX_DELIVERY_TIMEOUT: '1s' });
    const job = makeJob({
      domain: 'slow.test',
      recipients: [{ id: 'rcpt-slow', address: 'a@slow.test' }],
    });
    const started = Date.now();
    await publishJob(job);
    await waitFor(() => resultFor(job.leaseId) !== undefined, 'the delivery result');
    await stopWorkers();
    const outcome = resultFor(job.leaseId)?.outcomes[0];
    assert.equal(outcome?.status, 'deferred');
    assert.equal(outcome?.enhancedCode, '4.4.3');
    assert.ok(Date.now() - started < 4000, 'MX_DELIVERY_TIMEOUT did not bound the DNS lookups');
  });

  test('stop waits for deliveries in flight', async () => {
    const worker = await runWorker([]);
    const job = makeJob();
    primary.onData = () => new Promise((resolve) => setTimeout(() => resolve(undefined), 500));
    await publishJob(job);
    await waitFor(() => primary.currentSessions > 0, 'the delivery to start');
    await worker.stop();
    workers.splice(workers.indexOf(worker), 1);
    primary.onData = () => undefined;
    await waitFor(() => resultFor(job.leaseId) !== undefined, 'the delivery result', 2000);
    assert.equal(resultFor(job.leaseId)?.outcomes[0]?.status, 'delivered');
    await waitFor(() => primary.currentSessions === 0, 'the idle session to close', 2000);
  });

  test('stop acknowledges finished jobs', async () => {
    const worker = await runWorker([]);
    const job = makeJob();
    primary.onData = () => new Promise((resolve) => setTimeout(() => resolve(undefined), 300));
    await publishJob(job);
    await waitFor(() => primary.currentSessions > 0, 'the delivery to start');
    await worker.stop();
    workers.splice(workers.indexOf(worker), 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const requeued = await purgeQueue(broker.name(QUEUE.deliveryJobs));
    assert.equal(requeued, 0, 'the delivered job went back to delivery.jobs');
  });

  test('drops invalid and expired jobs', async () => {
    const lines: LogLine[] = [];
    await runWorker(lines);
    const expired = makeJob({ leaseUntil: Date.now() - 1000 });
    const valid = makeJob();
    await broker.publish(QUEUE.deliveryJobs, Buffer.from('not a frame'));
    await publishJob({ leaseId: 'broken', queueId: 'QUEUE-BROKEN' });
    await publishJob(expired);
    await publishJob(valid);
    await waitFor(() => resultFor(valid.leaseId) !== undefined, 'the valid job result');
    await waitFor(
      () => lines.some((line) => line.leaseId === expired.leaseId),
      'the expired job log line',
    );
    await stopWorkers();

    assert.equal(resultFor(expired.leaseId), undefined);
    assert.equal(resultFor('broken'), undefined);
    const delivered = (address: string) =>
      primary.messages.filter((message) => message.rcptTo.includes(address)).length;
    assert.equal(delivered(valid.recipients[0]?.address ?? ''), 1);
    assert.equal(delivered(expired.recipients[0]?.address ?? ''), 0);
    assert.ok(lines.some((line) => line.level === 'error' && /not a valid frame/.test(line.msg)));
    assert.ok(lines.some((line) => line.level === 'error' && /header is invalid/.test(line.msg)));
    assert.ok(lines.some((line) => line.level === 'warn' && /lease expired/.test(line.msg)));
  });

  test('two workers deliver each of 50 jobs once', async () => {
    const firstLines: LogLine[] = [];
    const secondLines: LogLine[] = [];
    await runWorker(firstLines);
    await runWorker(secondLines);
    primary.messages.length = 0;
    const jobs = Array.from({ length: 50 }, () => makeJob());
    await Promise.all(jobs.map((job) => publishJob(job)));
    await waitFor(
      () => jobs.every((job) => resultFor(job.leaseId) !== undefined),
      'all 50 results',
      30_000,
    );
    await stopWorkers();

    for (const job of jobs) {
      assert.equal(
        results.filter((result) => result.leaseId === job.leaseId).length,
        1,
        `results of ${job.leaseId}`,
      );
      assert.equal(resultFor(job.leaseId)?.outcomes[0]?.status, 'delivered');
      const copies = primary.messages.filter((message) =>
        message.rcptTo.includes(job.recipients[0]?.address ?? ''),
      );
      assert.equal(copies.length, 1, `copies delivered for ${job.queueId}`);
    }
    const queueIds = new Set(jobs.map((job) => job.queueId));
    const handled = (lines: LogLine[]) =>
      lines.filter((line) => line.status === 'delivered' && queueIds.has(line.queueId as string))
        .length;
    assert.equal(handled(firstLines) + handled(secondLines), 50);
    assert.ok(handled(firstLines) > 0, 'the first worker delivered nothing');
    assert.ok(handled(secondLines) > 0, 'the second worker delivered nothing');
  });
});
