/**
 * A PostgreSQL restart ends every connection: a client that is checked out of the pool at that
 * moment must fail its transaction, not the process.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createLogger } from '@secondary-mx/logger';
import { createPool, type Pool, withTransaction } from '../src/connection.ts';

// The maintenance database: these tests only read and end their own connections.
const POSTGRES_URL = `${process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432'}/postgres`;

let pool: Pool;

before(() => {
  pool = createPool(POSTGRES_URL, createLogger('test', 'silent'), 2);
});

after(async () => {
  await pool.end();
});

test('withTransaction survives an ended connection', async () => {
  await assert.rejects(
    withTransaction(pool, async (client) => {
      const backend = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      // Ended from another connection while this client runs no query, as a restart does.
      await pool.query('SELECT pg_terminate_backend($1)', [backend.rows[0]?.pid]);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await client.query('SELECT 1');
    }),
    /not queryable|terminat/i,
  );
  // The pool replaces the broken client.
  const check = await pool.query<{ one: number }>('SELECT 1 AS one');
  assert.equal(check.rows[0]?.one, 1);
});
