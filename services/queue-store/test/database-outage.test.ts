/**
 * queue-store while PostgreSQL is unreachable: its scheduler and maintenance passes back off
 * and log one line per attempt, instead of several lines per second, and resume once the
 * database replies again. PostgreSQL is reached through a TCP proxy that the test cuts, so the
 * shared server keeps running.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  LOCAL_POSTGRES_URL,
  READY_LINES,
  type ServiceProcess,
  startService,
  startTcpProxy,
  type TcpProxy,
  testEnvironment,
} from '@secondary-mx/testkit';

const environment = testEnvironment('qs_outage');
/** How long the database stays cut: long enough for a dozen passes at the short interval. */
const OUTAGE_MS = 6000;
/** At most this many lines per loop in OUTAGE_MS: retries after 0.5, 1, 2 and 4 s, plus one. */
const MAX_LINES_PER_LOOP = 6;

let proxy: TcpProxy;
let queueStore: ServiceProcess;

interface LogLine {
  msg: string;
  attempt?: number;
  retryInMs?: number;
}

function logLines(child: ServiceProcess): LogLine[] {
  return child.output
    .join('')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);
}

before(async () => {
  const target = new URL(LOCAL_POSTGRES_URL);
  proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
  const databaseUrl = new URL(environment.database.url);
  databaseUrl.hostname = '127.0.0.1';
  databaseUrl.port = String(proxy.port);
  queueStore = startService('queue-store', {
    ...environment.env,
    DATABASE_URL: databaseUrl.toString(),
    MX_LOG_LEVEL: 'info',
    // Without the backoff, 10 scheduler passes and 2 maintenance passes a second.
    MX_SCHEDULER_INTERVAL: '100ms',
  });
  await queueStore.waitForLog(READY_LINES['queue-store'], 30_000);
});

after(async () => {
  await queueStore?.stop();
  await proxy?.close();
  await environment.database.drop();
});

test('database outage backs off and resumes', async () => {
  proxy.cut();
  await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS));
  const during = logLines(queueStore);
  const schedulerFailures = during.filter((line) => line.msg.startsWith('scheduler pass failed'));
  const maintenanceFailures = during.filter((line) =>
    line.msg.startsWith('maintenance pass failed'),
  );
  const stepFailures = during.filter((line) => line.msg === 'maintenance step failed');

  assert.ok(schedulerFailures.length >= 2, `scheduler lines:\n${queueStore.tail()}`);
  assert.ok(
    schedulerFailures.length <= MAX_LINES_PER_LOOP,
    `${schedulerFailures.length} scheduler lines in ${OUTAGE_MS} ms`,
  );
  assert.ok(maintenanceFailures.length >= 2, `maintenance lines:\n${queueStore.tail()}`);
  assert.ok(
    maintenanceFailures.length <= MAX_LINES_PER_LOOP,
    `${maintenanceFailures.length} maintenance lines in ${OUTAGE_MS} ms`,
  );
  assert.equal(stepFailures.length, 0, 'a step failure while the database is down');
  for (const failures of [schedulerFailures, maintenanceFailures]) {
    assert.deepEqual(
      failures.map((line) => line.attempt),
      failures.map((_, index) => index + 1),
      'attempts counted from 1',
    );
    const delays = failures.map((line) => line.retryInMs ?? 0);
    assert.deepEqual(
      delays,
      [...delays].sort((a, b) => a - b),
      'retry delays never shrink',
    );
    assert.ok((delays.at(-1) ?? 0) > (delays[0] ?? 0), `delays ${delays.join(', ')} grow`);
  }

  proxy.restore();
  await queueStore.waitForLog(/"msg":"scheduler passes work again"/, 20_000);
  await queueStore.waitForLog(/"msg":"maintenance passes work again"/, 20_000);
  assert.equal(queueStore.exitCode, undefined, queueStore.tail());
});
