/**
 * Restarts of the local RabbitMQ, PostgreSQL and Redis servers, with the commands an operator
 * of this machine uses. Each restart brings its server back even when a step fails, and also
 * when this process exits or is interrupted while the server is down.
 *
 * These servers are shared: a restart disturbs every other test that uses them, so the fault
 * suite runs on its own, after `pnpm test`.
 */
import { execFile, execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

const REDIS_START = [
  '--daemonize',
  'yes',
  '--bind',
  '127.0.0.1',
  '-::1',
  '--port',
  '6379',
  '--save',
  '',
  '--appendonly',
  'no',
  '--dir',
  '/var/lib/redis',
  '--logfile',
  '/var/log/redis/ci.log',
];

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function postgresVersion(): string {
  const versions = readdirSync('/etc/postgresql');
  if (versions.length !== 1) {
    throw new Error(
      `expected one cluster version in /etc/postgresql, found ${versions.join(', ')}`,
    );
  }
  return versions[0] as string;
}

/**
 * Runs `down`, waits downMs, then runs `up`, which also runs if `down` or the wait fails, and
 * synchronously as `upSync` if the process exits or gets SIGINT or SIGTERM in between.
 */
async function withServerDown(
  down: () => Promise<unknown>,
  downMs: number,
  up: () => Promise<unknown>,
  upSync: () => void,
): Promise<void> {
  const onExit = () => upSync();
  const onSignal = (signal: NodeJS.Signals) => {
    upSync();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('exit', onExit);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await down();
    await sleep(downMs);
  } finally {
    try {
      await up();
    } finally {
      process.off('exit', onExit);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }
}

/** Stops the RabbitMQ application for downMs, then starts it and waits until it serves. */
export async function restartRabbitMq(downMs: number): Promise<void> {
  await withServerDown(
    () => run('rabbitmqctl', ['-q', 'stop_app']),
    downMs,
    async () => {
      await run('rabbitmqctl', ['-q', 'start_app']);
      await run('rabbitmqctl', ['-q', 'await_startup']);
    },
    () => execFileSync('rabbitmqctl', ['-q', 'start_app'], { stdio: 'ignore' }),
  );
}

/** Restarts the PostgreSQL cluster (a fast shutdown, then a start) and waits until it serves. */
export async function restartPostgres(): Promise<void> {
  const version = postgresVersion();
  const cluster = ['--skip-systemctl-redirect', version, 'main'];
  const start = () => execFileSync('pg_ctlcluster', [...cluster, 'start'], { stdio: 'ignore' });
  await withServerDown(
    () => run('pg_ctlcluster', [...cluster, 'restart']),
    0,
    async () => {
      if (!(await postgresReady())) {
        start();
      }
      await waitFor(postgresReady, 30_000, 'PostgreSQL did not come back');
    },
    () => {
      try {
        execFileSync('pg_isready', ['-q', '-h', '127.0.0.1', '-p', '5432']);
      } catch {
        start();
      }
    },
  );
}

/** Shuts Redis down without saving, keeps it down for downMs, then starts it again. */
export async function restartRedis(downMs: number): Promise<void> {
  await withServerDown(
    () => run('redis-cli', ['-h', '127.0.0.1', '-p', '6379', 'shutdown', 'nosave']),
    downMs,
    async () => {
      if (!(await redisReady())) {
        await run('redis-server', REDIS_START);
      }
      await waitFor(redisReady, 30_000, 'Redis did not come back');
    },
    () => {
      try {
        execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', '6379', 'ping'], { stdio: 'ignore' });
      } catch {
        execFileSync('redis-server', REDIS_START, { stdio: 'ignore' });
      }
    },
  );
}

async function postgresReady(): Promise<boolean> {
  try {
    await run('pg_isready', ['-q', '-h', '127.0.0.1', '-p', '5432']);
    return true;
  } catch {
    return false;
  }
}

async function redisReady(): Promise<boolean> {
  try {
    const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', '6379', 'ping']);
    return stdout.trim() === 'PONG';
  } catch {
    return false;
  }
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, message: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      throw new Error(`${message} within ${timeoutMs} ms`);
    }
    await sleep(200);
  }
}
