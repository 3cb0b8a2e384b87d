import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { Broker } from '@secondary-mx/amqp';
import { loadSettings } from '@secondary-mx/config';
import {
  type DeliveryJob,
  type DeliveryResult,
  encodeFrame,
  type JobMessage,
  type ProbeJob,
  type ProbeResult,
  QUEUE,
  type RecipientOutcome,
  ResultSchema,
} from '@secondary-mx/contracts';
import {
  DISCONNECT,
  deleteQueues,
  FakePrimary,
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
const probeResults: ProbeResult[] = [];
/** The main primary's open sessions at the moment each delivery result arrived, by lease. */
const sessionsAtResult = new Map<string, number>();
const workers: DeliveryWorker[] = [];
const extraPrimaries: FakePrimary[] = [];
let counter = 0;

/** Returns a message for member.test, sized for PAYLOAD unless the overrides set `size`. */
function makeMessage(overrides: Partial<JobMessage> = {}): JobMessage {
  counter += 1;
  return {
    queueId: `QUEUE${String(counter).padStart(4, '0')}`,
    sender: 'alice@sender.test',
    recipients: [{ id: `rcpt-${counter}`, address: `user${counter}@member.test` }],
    bodyType: '7BIT',
    smtpUtf8: false,
    size: PAYLOAD.length,
    ...overrides,
  };
}

function makeJob(overrides: Partial<DeliveryJob> = {}): DeliveryJob {
  counter += 1;
  return {
    kind: 'delivery',
    leaseId: `lease-${counter}`,
    leaseUntil: Date.now() + 60_000,
    domain: 'member.test',
    primaryHosts: [],
    messages: [makeMessage()],
    ...overrides,
  };
}

function makeProbe(overrides: Partial<ProbeJob> = {}): ProbeJob {
  counter += 1;
  return {
    kind: 'probe',
    probeId: `probe-${counter}`,
    domain: 'member.test',
    primaryHosts: [],
    deadline: Date.now() + 30_000,
    ...overrides,
  };
}

async function extraPrimary(
  options: Parameters<typeof startFakePrimary>[0] = {},
): Promise<FakePrimary> {
  const started = await startFakePrimary(options);
  extraPrimaries.push(started);
  return started;
}

async function runWorker(
  lines: LogLine[],
  extra: Record<string, string> = {},
): Promise<DeliveryWorker> {
  const settings = loadSettings(SETTING_NAMES, { ...env, ...extra });
  const worker = await startWorker(settings, recordingLogger(lines));
  workers.push(worker);
  return worker;
}

async function stopWorkers(): Promise<void> {
  await Promise.all(workers.splice(0).map((worker) => worker.stop()));
}

/** Publishes a job whose payload is the messages' bytes in order (PAYLOAD for each by default). */
function publishJob(job: unknown, payload?: Buffer): Promise<void> {
  const messages = (job as Partial<DeliveryJob>).messages ?? [];
  const bytes = payload ?? Buffer.concat(messages.map(() => PAYLOAD));
  return broker.publish(QUEUE.deliveryJobs, encodeFrame(job, bytes));
}

function resultFor(leaseId: string): DeliveryResult | undefined {
  return results.find((result) => result.leaseId === leaseId);
}

function probeResultFor(probeId: string): ProbeResult | undefined {
  return probeResults.find((result) => result.probeId === probeId);
}

function outcomeFor(result: DeliveryResult | undefined, recipientId: string): RecipientOutcome {
  const outcome = result?.outcomes.find((entry) => entry.recipientId === recipientId);
  assert.ok(outcome, `no outcome for ${recipientId}`);
  return outcome;
}

async function waitForResult(leaseId: string, timeoutMs?: number): Promise<DeliveryResult> {
  await waitFor(() => resultFor(leaseId) !== undefined, `the result of ${leaseId}`, timeoutMs);
  return resultFor(leaseId) as DeliveryResult;
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
    MX_DELIVERY_METRICS_LISTEN: '',
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
      const result = ResultSchema.parse(JSON.parse(message.content.toString('utf8')));
      if (result.kind === 'probe') {
        probeResults.push(result);
        return;
      }
      if (!sessionsAtResult.has(result.leaseId)) {
        sessionsAtResult.set(result.leaseId, primary.currentSessions);
      }
      results.push(result);
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
  await Promise.all(extraPrimaries.splice(0).map((entry) => entry.stop()));
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
    const message = makeMessage({
      recipients: [
        { id: 'rcpt-ok', address: 'ok@member.test' },
        { id: 'rcpt-nouser', address: 'nouser@member.test' },
      ],
    });
    const job = makeJob({ messages: [message] });
    await publishJob(job);
    const result = await waitForResult(job.leaseId);
    await stopWorkers();

    assert.equal(result.kind, 'delivery');
    assert.equal(result.domain, 'member.test');
    assert.ok(Math.abs(result.attemptedAt - Date.now()) < 30_000);
    const ok = outcomeFor(result, 'rcpt-ok');
    const nouser = outcomeFor(result, 'rcpt-nouser');
    assert.equal(ok.status, 'delivered');
    assert.equal(ok.queueId, message.queueId);
    assert.equal(ok.remoteMta, 'primary.member.test');
    assert.equal(nouser.status, 'failed');
    assert.equal(nouser.queueId, message.queueId);
    assert.equal(nouser.reply, '550 5.1.1 No such user');
    assert.equal(nouser.enhancedCode, '5.1.1');

    const received = primary.messages.find((entry) => entry.rcptTo.includes('ok@member.test'));
    assert.ok(received?.raw.equals(PAYLOAD));

    const attempts = lines.filter((line) => line.queueId === message.queueId && 'status' in line);
    assert.equal(attempts.length, 2);
    const logged = attempts.find((line) => line.recipient === 'nouser@member.test');
    assert.equal(logged?.domain, 'member.test');
    assert.equal(logged?.relay, `primary.member.test[127.0.0.1]:${primary.port}`);
    assert.equal(logged?.status, 'failed');
    assert.equal(logged?.reply, '550 5.1.1 No such user');
    assert.equal(typeof logged?.durationMs, 'number');

    const jobLine = lines.find((line) => line.leaseId === job.leaseId && 'messages' in line);
    assert.ok(jobLine, 'no log line for the job');
    assert.equal(jobLine.domain, 'member.test');
    assert.equal(jobLine.messages, 1);
    assert.equal(jobLine.recipients, 2);
    assert.equal(jobLine.relay, `primary.member.test[127.0.0.1]:${primary.port}`);
    assert.equal(typeof jobLine.durationMs, 'number');
    assert.ok(!JSON.stringify(lines).includes(BODY_MARKER), 'a log line contains the message body');
  });

  test('delivers a job over one session', async () => {
    await runWorker([]);
    const payloads = [1, 2, 3].map((n) =>
      Buffer.from(`Subject: part ${n}\r\n\r\nbody of part ${n}\r\n`, 'ascii'),
    );
    const messages = payloads.map((payload) => makeMessage({ size: payload.length }));
    const job = makeJob({ messages });
    await publishJob(job, Buffer.concat(payloads));
    const result = await waitForResult(job.leaseId);
    await stopWorkers();

    assert.equal(sessionsAtResult.get(job.leaseId), 0, 'the session was open when the result came');
    assert.equal(result.outcomes.length, 3);
    messages.forEach((message, n) => {
      const outcome = outcomeFor(result, message.recipients[0]?.id ?? '');
      assert.equal(outcome.status, 'delivered', `message ${n}`);
      assert.equal(outcome.queueId, message.queueId, `message ${n}`);
    });
    const received = messages.map((message) =>
      primary.messages.find((entry) => entry.rcptTo.includes(message.recipients[0]?.address ?? '')),
    );
    received.forEach((entry, n) => {
      assert.ok(entry?.raw.equals(payloads[n] as Buffer), `bytes of message ${n}`);
    });
    const sessionIds = new Set(received.map((entry) => entry?.sessionId));
    assert.equal(sessionIds.size, 1, 'the messages came over more than one session');
  });

  test('judges recipients across two messages', async () => {
    primary.onRcpt = (address) => {
      if (address.startsWith('busy')) {
        return { code: 450, message: '4.2.1 Mailbox busy' };
      }
      return address.startsWith('nouser')
        ? { code: 550, message: '5.1.1 No such user' }
        : undefined;
    };
    await runWorker([]);
    const first = makeMessage({
      recipients: [
        { id: 'rcpt-a-ok', address: 'ok-a@member.test' },
        { id: 'rcpt-a-busy', address: 'busy-a@member.test' },
      ],
    });
    const second = makeMessage({
      recipients: [
        { id: 'rcpt-b-nouser', address: 'nouser-b@member.test' },
        { id: 'rcpt-b-ok', address: 'ok-b@member.test' },
      ],
    });
    const job = makeJob({ messages: [first, second] });
    await publishJob(job);
    const result = await waitForResult(job.leaseId);
    await stopWorkers();

    assert.equal(result.outcomes.length, 4);
    const cases = [
      ['rcpt-a-ok', first.queueId, 'delivered', '250'],
      ['rcpt-a-busy', first.queueId, 'deferred', '450'],
      ['rcpt-b-nouser', second.queueId, 'failed', '550'],
      ['rcpt-b-ok', second.queueId, 'delivered', '250'],
    ] as const;
    for (const [recipientId, queueId, status, code] of cases) {
      const outcome = outcomeFor(result, recipientId);
      assert.equal(outcome.queueId, queueId, recipientId);
      assert.equal(outcome.status, status, recipientId);
      assert.ok(outcome.reply.startsWith(code), `${recipientId}: ${outcome.reply}`);
    }
    assert.equal(outcomeFor(result, 'rcpt-a-busy').failureKind, 'reply');
    assert.equal(outcomeFor(result, 'rcpt-a-ok').failureKind, undefined);
    assert.equal(outcomeFor(result, 'rcpt-b-nouser').failureKind, undefined);
  });

  test('sets failureKind connection when refused', async () => {
    const down = await FakePrimary.create();
    await runWorker([]);
    const job = makeJob({ primaryHosts: [down.address] });
    await publishJob(job);
    const result = await waitForResult(job.leaseId);
    await stopWorkers();
    const outcome = result.outcomes[0];
    assert.equal(outcome?.status, 'deferred');
    assert.equal(outcome?.enhancedCode, '4.4.1');
    assert.equal(outcome?.failureKind, 'connection');
    assert.equal(outcome?.remoteMta, undefined);
  });

  test('sets remoteDsn from the EHLO reply', async () => {
    const dsnPrimary = await extraPrimary({ dsn: true });
    await runWorker([]);
    const toDsn = makeJob({ primaryHosts: [dsnPrimary.address] });
    const toPlain = makeJob();
    await publishJob(toDsn);
    await publishJob(toPlain);
    const dsnResult = await waitForResult(toDsn.leaseId);
    const plainResult = await waitForResult(toPlain.leaseId);
    await stopWorkers();
    assert.equal(dsnResult.outcomes[0]?.status, 'delivered');
    assert.equal(dsnResult.outcomes[0]?.remoteDsn, true);
    assert.equal(plainResult.outcomes[0]?.status, 'delivered');
    assert.equal(plainResult.outcomes[0]?.remoteDsn, false);
  });

  test('defers the rest after a lost connection', async () => {
    const lossy = await extraPrimary();
    // The primary drops the second message and goes down, so the reconnect finds the port closed.
    lossy.onData = (received) => {
      if (received.rcptTo.some((address) => address.startsWith('second'))) {
        void lossy.stop();
        return DISCONNECT;
      }
      return undefined;
    };
    await runWorker([]);
    const messages = ['first', 'second', 'third'].map((name) =>
      makeMessage({
        recipients: [{ id: `rcpt-${name}-${counter}`, address: `${name}@member.test` }],
      }),
    );
    const job = makeJob({ primaryHosts: [lossy.address], messages });
    await publishJob(job);
    const result = await waitForResult(job.leaseId);
    await stopWorkers();

    const [first, second, third] = messages.map((message) =>
      outcomeFor(result, message.recipients[0]?.id ?? ''),
    );
    assert.equal(first?.status, 'delivered');
    assert.equal(second?.status, 'deferred');
    assert.equal(second?.failureKind, 'connection');
    assert.equal(third?.status, 'deferred');
    assert.equal(third?.failureKind, 'connection');
    assert.equal(third?.queueId, messages[2]?.queueId);
    assert.equal(lossy.messages.length, 1);
  });

  test('drops a payload whose sizes do not add up', async () => {
    const lines: LogLine[] = [];
    await runWorker(lines);
    const short = makeJob({ messages: [makeMessage(), makeMessage()] });
    await publishJob(short, Buffer.concat([PAYLOAD, PAYLOAD.subarray(1)]));
    const valid = makeJob();
    await publishJob(valid);
    await waitForResult(valid.leaseId);
    await waitFor(
      () => lines.some((line) => line.leaseId === short.leaseId && line.level === 'error'),
      'the error log line of the short job',
    );
    await stopWorkers();

    assert.equal(resultFor(short.leaseId), undefined);
    for (const message of short.messages) {
      const address = message.recipients[0]?.address ?? '';
      assert.ok(!primary.messages.some((entry) => entry.rcptTo.includes(address)), address);
    }
    const logged = lines.find((line) => line.leaseId === short.leaseId && line.level === 'error');
    assert.match(logged?.msg ?? '', /does not match the sum of its message sizes/);
    assert.equal(logged?.payloadBytes, 2 * PAYLOAD.length - 1);
    assert.equal(logged?.messageBytes, 2 * PAYLOAD.length);
  });

  test('publishes a null MX as failed', async () => {
    await runWorker([]);
    const job = makeJob({
      domain: 'nullmx.test',
      messages: [makeMessage({ recipients: [{ id: 'rcpt-null', address: 'a@nullmx.test' }] })],
    });
    await publishJob(job);
    const result = await waitForResult(job.leaseId);
    await stopWorkers();
    const outcome = result.outcomes[0];
    assert.equal(outcome?.status, 'failed');
    assert.equal(outcome?.enhancedCode, '5.1.10');
    assert.equal(outcome?.failureKind, undefined);
  });

  test('defers a job when DNS times out', async () => {
    await runWorker([], { MX_DELIVERY_TIMEOUT: '1s' });
    const job = makeJob({
      domain: 'slow.test',
      messages: [
        makeMessage({ recipients: [{ id: 'rcpt-slow-1', address: 'a@slow.test' }] }),
        makeMessage({ recipients: [{ id: 'rcpt-slow-2', address: 'b@slow.test' }] }),
      ],
    });
    const started = Date.now();
    await publishJob(job);
    const result = await waitForResult(job.leaseId);
    await stopWorkers();
    assert.equal(result.outcomes.length, 2);
    for (const outcome of result.outcomes) {
      assert.equal(outcome.status, 'deferred');
      assert.equal(outcome.enhancedCode, '4.4.3');
      assert.equal(outcome.failureKind, 'connection');
    }
    assert.ok(Date.now() - started < 4000, 'MX_DELIVERY_TIMEOUT did not bound the DNS lookups');
  });

  test('republishes the result of a redelivered lease', async () => {
    const lines: LogLine[] = [];
    await runWorker(lines);
    const job = makeJob();
    await publishJob(job);
    await waitForResult(job.leaseId);
    await publishJob(job);
    await waitFor(
      () => results.filter((result) => result.leaseId === job.leaseId).length === 2,
      'the republished result',
    );
    await stopWorkers();
    const copies = results.filter((result) => result.leaseId === job.leaseId);
    assert.deepEqual(copies[1], copies[0]);
    const address = job.messages[0]?.recipients[0]?.address ?? '';
    assert.equal(primary.messages.filter((entry) => entry.rcptTo.includes(address)).length, 1);
    assert.ok(lines.some((line) => line.leaseId === job.leaseId && /again/.test(line.msg)));
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
    const result = await waitForResult(job.leaseId, 2000);
    assert.equal(result.outcomes[0]?.status, 'delivered');
    assert.equal(sessionsAtResult.get(job.leaseId), 0, 'the session was open when the result came');
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

  test('stop hands back messages not started', async () => {
    const worker = await runWorker([]);
    const job = makeJob({ messages: [makeMessage(), makeMessage(), makeMessage()] });
    let dataReplies = 0;
    primary.onData = () => {
      dataReplies += 1;
      return new Promise((resolve) => setTimeout(() => resolve(undefined), 500));
    };
    await publishJob(job);
    await waitFor(() => dataReplies > 0, 'the first message to reach DATA');
    await worker.stop();
    workers.splice(workers.indexOf(worker), 1);

    const result = await waitForResult(job.leaseId, 2000);
    const [first, ...rest] = job.messages.map((message) => message.recipients[0]?.id ?? '');
    assert.equal(outcomeFor(result, first ?? '').status, 'delivered');
    for (const recipientId of rest) {
      const outcome = outcomeFor(result, recipientId);
      assert.equal(outcome.status, 'deferred');
      assert.equal(outcome.failureKind, 'notAttempted');
      assert.match(outcome.reply, /delivery worker is stopping/);
    }
    assert.equal(dataReplies, 1, 'a message after the one in hand was sent');
  });

  test('stop cuts a delivery off after the grace', async () => {
    const worker = await runWorker([], { MX_SHUTDOWN_GRACE: '300ms' });
    const job = makeJob();
    primary.onData = () => new Promise((resolve) => setTimeout(() => resolve(undefined), 5000));
    await publishJob(job);
    await waitFor(() => primary.currentSessions > 0, 'the delivery to start');
    const stopStarted = Date.now();
    await worker.stop();
    const stopMs = Date.now() - stopStarted;
    workers.splice(workers.indexOf(worker), 1);

    assert.ok(stopMs < 3000, `stop took ${stopMs} ms with a grace of 300 ms`);
    const result = await waitForResult(job.leaseId, 2000);
    assert.equal(result.outcomes[0]?.status, 'deferred');
  });

  test('drops invalid and expired jobs', async () => {
    const lines: LogLine[] = [];
    await runWorker(lines);
    const expired = makeJob({ leaseUntil: Date.now() - 1000 });
    const valid = makeJob();
    await broker.publish(QUEUE.deliveryJobs, Buffer.from('not a frame'));
    await publishJob({ kind: 'delivery', leaseId: 'broken', domain: 'member.test' });
    await publishJob({ ...makeJob(), kind: 'unknown', leaseId: 'unknown-kind' });
    await publishJob(expired);
    await publishJob(valid);
    await waitForResult(valid.leaseId);
    await waitFor(
      () => lines.some((line) => line.leaseId === expired.leaseId),
      'the expired job log line',
    );
    await stopWorkers();

    assert.equal(resultFor(expired.leaseId), undefined);
    assert.equal(resultFor('broken'), undefined);
    assert.equal(resultFor('unknown-kind'), undefined);
    const delivered = (job: DeliveryJob) => {
      const address = job.messages[0]?.recipients[0]?.address ?? '';
      return primary.messages.filter((entry) => entry.rcptTo.includes(address)).length;
    };
    assert.equal(delivered(valid), 1);
    assert.equal(delivered(expired), 0);
    assert.ok(lines.some((line) => line.level === 'error' && /not a valid frame/.test(line.msg)));
    const invalid = lines.filter(
      (line) => line.level === 'error' && /header is invalid/.test(line.msg),
    );
    assert.deepEqual(invalid.map((line) => line.leaseId).sort(), ['broken', 'unknown-kind']);
    assert.ok(lines.some((line) => line.level === 'warn' && /lease expired/.test(line.msg)));
  });

  test('three workers deliver each of 30 jobs once', async () => {
    const lineSets: LogLine[][] = [[], [], []];
    for (const lines of lineSets) {
      await runWorker(lines, { MX_DELIVERY_CONCURRENCY: '5' });
    }
    primary.messages.length = 0;
    const jobs = Array.from({ length: 30 }, () => makeJob());
    await Promise.all(jobs.map((job) => publishJob(job)));
    await waitFor(
      () => jobs.every((job) => resultFor(job.leaseId) !== undefined),
      'all 30 results',
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
      const address = job.messages[0]?.recipients[0]?.address ?? '';
      const copies = primary.messages.filter((entry) => entry.rcptTo.includes(address));
      assert.equal(copies.length, 1, `copies delivered for ${job.leaseId}`);
    }
    const leaseIds = new Set(jobs.map((job) => job.leaseId));
    const handled = (lines: LogLine[]) =>
      lines.filter((line) => line.status === 'delivered' && leaseIds.has(line.leaseId as string))
        .length;
    const counts = lineSets.map(handled);
    assert.equal(
      counts.reduce((sum, count) => sum + count, 0),
      30,
    );
    counts.forEach((count, index) => {
      assert.ok(count > 0, `worker ${index} delivered nothing`);
    });
    assert.ok(primary.maxSessions <= 15, `${primary.maxSessions} sessions at once`);
  });
});

describe('probes', () => {
  test('succeed against a running primary', async () => {
    const lines: LogLine[] = [];
    await runWorker(lines);
    const before = primary.messages.length;
    const probe = makeProbe();
    await publishJob(probe, Buffer.alloc(0));
    await waitFor(() => probeResultFor(probe.probeId) !== undefined, 'the probe result');
    await stopWorkers();

    const result = probeResultFor(probe.probeId);
    assert.equal(result?.kind, 'probe');
    assert.equal(result?.domain, 'member.test');
    assert.equal(result?.ok, true);
    assert.match(result?.reply ?? '', /^250 /);
    assert.equal(result?.remoteMta, 'primary.member.test');
    assert.ok(Math.abs((result?.attemptedAt ?? 0) - Date.now()) < 30_000);
    assert.equal(primary.messages.length, before, 'the probe sent mail');

    const logged = lines.find((line) => line.probeId === probe.probeId);
    assert.equal(logged?.domain, 'member.test');
    assert.equal(logged?.host, 'primary.member.test');
    assert.equal(logged?.ok, true);
    assert.match(String(logged?.reply), /^250 /);
  });

  test('fail against a stopped primary', async () => {
    const down = await FakePrimary.create();
    const lines: LogLine[] = [];
    await runWorker(lines);
    const probe = makeProbe({ primaryHosts: [down.address] });
    await publishJob(probe, Buffer.alloc(0));
    await waitFor(() => probeResultFor(probe.probeId) !== undefined, 'the probe result');
    await stopWorkers();

    const result = probeResultFor(probe.probeId);
    assert.equal(result?.ok, false);
    assert.match(result?.reply ?? '', /ECONNREFUSED/);
    assert.equal(result?.remoteMta, undefined);
    const logged = lines.find((line) => line.probeId === probe.probeId);
    assert.equal(logged?.ok, false);
    assert.equal(logged?.host, 'none');
  });

  test('never probe our own ingress', async () => {
    await runWorker([]);
    const probe = makeProbe({ primaryHosts: [env.MX_SMTP_LISTEN as string] });
    await publishJob(probe, Buffer.alloc(0));
    await waitFor(() => probeResultFor(probe.probeId) !== undefined, 'the probe result');
    await stopWorkers();
    const result = probeResultFor(probe.probeId);
    assert.equal(result?.ok, false);
    assert.match(result?.reply ?? '', /^451 4\.4\.6 /);
  });

  test('drop a probe past its deadline', async () => {
    const lines: LogLine[] = [];
    await runWorker(lines);
    const late = makeProbe({ deadline: Date.now() - 1000 });
    const timely = makeProbe();
    await publishJob(late, Buffer.alloc(0));
    await publishJob(timely, Buffer.alloc(0));
    await waitFor(() => probeResultFor(timely.probeId) !== undefined, 'the timely probe result');
    await waitFor(
      () => lines.some((line) => line.probeId === late.probeId),
      'the late probe log line',
    );
    await stopWorkers();
    assert.equal(probeResultFor(late.probeId), undefined);
    const logged = lines.find((line) => line.probeId === late.probeId);
    assert.match(logged?.msg ?? '', /deadline/);
    const requeued = await purgeQueue(broker.name(QUEUE.deliveryJobs));
    assert.equal(requeued, 0, 'the late probe went back to delivery.jobs');
  });
});
