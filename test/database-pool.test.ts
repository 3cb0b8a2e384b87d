/**
 * The PostgreSQL pool that queue-store and admin-api share: a connection that dies while in use
 * must not end the process, and a client stuck in a query that timed out is not reused.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createPool, ensureDatabase, type Pool, withTransaction } from '@secondary-mx/db';
import { createLogger } from '@secondary-mx/logger';
import { LOCAL_POSTGRES_URL, testDatabase } from '@secondary-mx/testkit';
import pg from 'pg';

const logger = createLogger('test', process.env.TEST_LOG_LEVEL ?? 'silent');
const database = testDatabase('smx_pool');

/** Ends the server process behind a connection, as a restart of PostgreSQL would. */
async function terminateBackend(pid: number): Promise<void> {
  const admin = new pg.Client({ connectionString: `${LOCAL_POSTGRES_URL}/postgres` });
  await admin.connect();
  try {
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
  } finally {
    await admin.end();
  }
}

async function backendPid(client: pg.PoolClient): Promise<number> {
  const result = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return result.rows[0]?.pid ?? 0;
}

async function selectOne(pool: Pool): Promise<number> {
  const result = await pool.query<{ one: number }>('SELECT 1 AS one');
  return result.rows[0]?.one ?? 0;
}

describe('database pool', () => {
  before(async () => {
    await ensureDatabase(database.url, logger);
  });

  after(async () => {
    await database.drop();
  });

  test('survives a connection lost in use', async () => {
    const pool = createPool(database.url, logger, 2);
    try {
      const client = await pool.connect();
      await terminateBackend(await backendPid(client));
      // Without a listener on the client, its 'error' event would end the test process here.
      await new Promise((resolve) => setTimeout(resolve, 200));
      await assert.rejects(client.query('SELECT 1'));
      client.release(true);
      assert.equal(await selectOne(pool), 1);
    } finally {
      await pool.end();
    }
  });

  test('discards a client after a query timeout', async () => {
    const pool = createPool(database.url, logger, 1, 300);
    try {
      await assert.rejects(
        withTransaction(pool, (client) => client.query('SELECT pg_sleep(3)')),
        /Query read timeout/,
      );
      // With one client in the pool, a reused client would still be busy with pg_sleep.
      const started = Date.now();
      assert.equal(await selectOne(pool), 1);
      const queryMs = Date.now() - started;
      assert.ok(queryMs < 1000, `the next query took ${queryMs} ms`);
    } finally {
      await pool.end();
    }
  });
});
