import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

test('pnpm start lists every invalid setting', () => {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      MX_RETRY_MIN: 'abc',
      MX_MAX_MESSAGE_SIZE: '-1',
      MX_ADMIN_TOKEN: 'short',
    },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(run.status, 78, run.stderr);
  assert.match(run.stderr, /MX_RETRY_MIN="abc" must be a duration/);
  assert.match(run.stderr, /MX_MAX_MESSAGE_SIZE="-1" must be a whole number/);
  assert.match(run.stderr, /MX_ADMIN_TOKEN=\(hidden\) must be at least 16 characters/);
  assert.doesNotMatch(run.stderr, /short/);
  assert.equal(run.stdout, '', 'no service was started');
});
