/**
 * Measures the two figures that matter for a backup MX, on this machine against the local
 * RabbitMQ, Redis and PostgreSQL:
 *
 * 1. accept rate: messages per second that ingress accepts (250 after commit) from
 *    `smtp-source` (Postfix's load generator) with parallel sessions, greylisting passed;
 * 2. drain time: how long a returning primary (`smtp-sink`, Postfix's fake server) takes to
 *    receive the whole backlog that waited for it.
 *
 * Run: node --import tsx bench/throughput.ts [messages] [sessions] [size-bytes] [workers]
 * Needs smtp-source and smtp-sink on PATH (Debian package postfix). Every server it starts
 * listens on 127.0.0.1 only.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { freePort, type ServiceName, startSuite, TestDnsServer } from '@secondary-mx/testkit';
import pg from 'pg';

const messages = Number(process.argv[2] ?? 2000);
const sessions = Number(process.argv[3] ?? 20);
const sizeBytes = Number(process.argv[4] ?? 10240);
const workers = Number(process.argv[5] ?? 2);
// `reuse` sends every message of a session over one connection (smtp-source -d), as busy
// senders do; `connect` opens a connection per message.
const connectionMode = process.argv[6] === 'reuse' ? 'reuse' : 'connect';

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${command} exited with ${code}`)),
    );
  });
}

async function countStates(client: pg.Client): Promise<Record<string, number>> {
  const result = await client.query<{ state: string; count: number }>(
    'SELECT state, count(*)::int AS count FROM recipients GROUP BY state',
  );
  return Object.fromEntries(result.rows.map((row) => [row.state, row.count]));
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const primaryPort = await freePort();
// A local DNS server replaces the resolver: the sender domain resolves, nothing else does.
const dns = await TestDnsServer.start({ 'bench.example': { A: ['127.0.0.1'] } });
const services: ServiceName[] = ['queue-store', 'greylist', 'ingress', 'admin-api'];
for (let i = 0; i < workers; i++) {
  services.push('delivery-worker');
}
const suite = await startSuite({
  services,
  env: {
    DNS_SERVERS: dns.server,
    ...(process.env.BENCH_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_NODE_OPTIONS } : {}),
    MX_GREYLIST_DELAY: '0s',
    MX_RETRY_MIN: '1h',
    MX_RETRY_MAX: '1h',
    MX_PROBE_INTERVAL_MIN: '1s',
    MX_PROBE_INTERVAL_MAX: '1s',
    MX_CONNECT_TIMEOUT: '1s',
  },
});
const database = new pg.Client({ connectionString: suite.environment.database.url });
let sink: ChildProcess | undefined;
try {
  await database.connect();
  await suite.api('POST', '/api/domains', { domain: 'member.example', memberNumber: '1' });
  await suite.api('POST', '/api/domains/member.example/approve');
  await suite.api('PATCH', '/api/domains/member.example', {
    primaryHosts: [`127.0.0.1:${primaryPort}`],
  });
  await new Promise((resolve) => setTimeout(resolve, 1000));

  const acceptStart = process.hrtime.bigint();
  await run('smtp-source', [
    ...(connectionMode === 'reuse' ? ['-d'] : []),
    '-s',
    String(sessions),
    '-m',
    String(messages),
    '-l',
    String(sizeBytes),
    '-f',
    'sender@bench.example',
    '-t',
    'user@member.example',
    `127.0.0.1:${suite.smtpPort}`,
  ]);
  const acceptSeconds = Number(process.hrtime.bigint() - acceptStart) / 1e9;
  const stored = Object.values(await countStates(database)).reduce((sum, count) => sum + count, 0);

  await waitFor(async () => ((await countStates(database)).deferred ?? 0) === stored, 120_000);
  // smtp-sink exits when run as root unless -u names the user to switch to.
  const sinkUser = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
  sink = spawn('smtp-sink', [...sinkUser, `127.0.0.1:${primaryPort}`, '256'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  sink.on('exit', (code) => {
    if (code !== null && code !== 0) {
      console.error(`smtp-sink exited with ${code}`);
      process.exitCode = 1;
    }
  });
  const drainStart = process.hrtime.bigint();
  console.error(`accepted ${stored} in ${acceptSeconds.toFixed(2)} s; draining`);
  await waitFor(async () => {
    const states = await countStates(database);
    if (process.env.BENCH_PROGRESS) console.error(JSON.stringify(states));
    return (states.delivered ?? 0) === stored;
  }, 300_000);
  const drainSeconds = Number(process.hrtime.bigint() - drainStart) / 1e9;

  console.log(
    JSON.stringify({
      messages,
      sessions,
      sizeBytes,
      workers,
      connectionMode,
      accepted: stored,
      acceptSeconds: Number(acceptSeconds.toFixed(2)),
      acceptPerSecond: Math.round(stored / acceptSeconds),
      drainSeconds: Number(drainSeconds.toFixed(2)),
      drainPerSecond: Math.round(stored / drainSeconds),
    }),
  );
} finally {
  sink?.kill();
  await database.end().catch(() => undefined);
  await suite.stop();
  await dns.close();
}
