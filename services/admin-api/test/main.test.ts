import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ensureDatabase, migrate } from '@secondary-mx/db';
import {
  freePort,
  LOCAL_AMQP_URL,
  type TestDatabase,
  testDatabase,
  uniqueName,
} from '@secondary-mx/testkit';
import { logger, TOKEN } from './support.ts';

const REPOSITORY_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const MAIN = 'services/admin-api/src/main.ts';

let database: TestDatabase;

before(async () => {
  database = testDatabase('smx_admin_main');
  await ensureDatabase(database.url, logger);
  await migrate(database.url, logger);
});

after(async () => {
  await database.drop();
});

interface Started {
  child: ChildProcess;
  output: { stdout: string; stderr: string };
  exit: Promise<number | null>;
}

/** Starts main.ts with only the given MX_ and backend variables set. */
function startMain(env: Record<string, string>): Started {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) => !name.startsWith('MX_') && !['DATABASE_URL', 'AMQP_URL'].includes(name),
    ),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    cwd: REPOSITORY_ROOT,
    env: { ...inherited, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = { stdout: '', stderr: '' };
  child.stdout?.on('data', (chunk: Buffer) => {
    output.stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output.stderr += chunk.toString();
  });
  const exit = once(child, 'exit').then(([code]) => code as number | null);
  return { child, output, exit };
}

async function waitForHealth(url: string, started: Started, timeoutMs = 20_000): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (started.child.exitCode !== null) {
      throw new Error(`main.ts exited with ${started.child.exitCode}: ${started.output.stderr}`);
    }
    try {
      const response = await fetch(url);
      if (response.status === 200) {
        return response;
      }
    } catch {
      // Not listening yet.
    }
    await sleep(100);
  }
  throw new Error(
    `no healthy response from ${url} within ${timeoutMs} ms: ${started.output.stdout}`,
  );
}

describe('main.ts', () => {
  test('serves, then exits 0 on SIGTERM', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const started = startMain({
      DATABASE_URL: database.url,
      AMQP_URL: LOCAL_AMQP_URL,
      MX_AMQP_PREFIX: `${uniqueName('admin-main')}.`,
      MX_ADMIN_LISTEN: `127.0.0.1:${port}`,
      MX_ADMIN_TOKEN: TOKEN,
      MX_HOSTNAME: 'mx2.test.example',
      MX_LOG_LEVEL: 'trace',
    });
    try {
      const health = await waitForHealth(`${base}/health`, started);
      assert.deepEqual(await health.json(), {
        status: 'ok',
        checks: { database: 'ok', rabbitmq: 'ok' },
      });

      const anonymous = await fetch(`${base}/api/domains`);
      assert.equal(anonymous.status, 401);
      assert.match(String(anonymous.headers.get('www-authenticate')), /^Bearer /);

      const wrong = await fetch(`${base}/api/domains`, {
        headers: { authorization: 'Bearer wrong-token-value' },
      });
      assert.equal(wrong.status, 401);

      const allowed = await fetch(`${base}/api/domains`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(allowed.status, 200);
    } finally {
      started.child.kill('SIGTERM');
    }

    assert.equal(await started.exit, 0, started.output.stderr);
    assert.match(started.output.stdout, /"msg":"stopped"/);
    assert.ok(!started.output.stdout.includes(TOKEN), 'the token appears in the log');
    assert.ok(
      !started.output.stdout.includes('wrong-token-value'),
      'a presented token appears in the log',
    );
  });

  test('missing MX_ADMIN_TOKEN exits naming it', { timeout: 30_000 }, async () => {
    const port = await freePort();
    const started = startMain({
      DATABASE_URL: database.url,
      AMQP_URL: LOCAL_AMQP_URL,
      MX_ADMIN_LISTEN: `127.0.0.1:${port}`,
      MX_HOSTNAME: 'mx2.test.example',
    });

    const code = await started.exit;
    assert.notEqual(code, 0);
    assert.match(started.output.stderr, /MX_ADMIN_TOKEN is missing/);
  });

  test('invalid MX_MEMBER_NUMBER_PATTERN exits naming it', { timeout: 30_000 }, async () => {
    const port = await freePort();
    const started = startMain({
      DATABASE_URL: database.url,
      AMQP_URL: LOCAL_AMQP_URL,
      MX_ADMIN_LISTEN: `127.0.0.1:${port}`,
      MX_ADMIN_TOKEN: TOKEN,
      MX_HOSTNAME: 'mx2.test.example',
      MX_MEMBER_NUMBER_PATTERN: '[0-9',
    });

    assert.equal(await started.exit, 78);
    assert.match(
      started.output.stderr,
      /MX_MEMBER_NUMBER_PATTERN="\[0-9" must be a valid regular expression/,
    );
  });
});
