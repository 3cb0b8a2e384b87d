import type { Logger } from '@secondary-mx/logger';
import pg from 'pg';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
/** A pool or a client inside a transaction: anything that runs queries. */
export type Queryable = Pick<pg.Pool, 'query'>;

/** Runs work in one transaction: COMMIT when it resolves, ROLLBACK when it throws. */
export async function withTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  // pg emits 'error' on a client whose server ends the connection (a restart, say), and the
  // pool listens only on idle clients. Without this listener that event would end the process.
  // The client's next query rejects as not queryable, so the transaction still fails.
  let connectionError: Error | undefined;
  const onError = (error: Error) => {
    connectionError = error;
  };
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.off('error', onError);
    // With an error the pool discards the client instead of handing it out again.
    client.release(connectionError);
  }
}

export function createPool(databaseUrl: string, logger: Logger, max = 10): pg.Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
    application_name: 'secondary-mx',
  });
  // An idle client that loses its server emits here; without a listener the process would exit.
  pool.on('error', (error) => logger.warn({ err: error }, 'PostgreSQL idle connection failed'));
  return pool;
}

/** Creates the database named in databaseUrl when it does not exist yet. */
export async function ensureDatabase(databaseUrl: string, logger: Logger): Promise<void> {
  const target = new URL(databaseUrl);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (name === '') {
    return;
  }
  const maintenance = new URL(databaseUrl);
  maintenance.pathname = '/postgres';
  const client = new pg.Client({
    connectionString: maintenance.toString(),
    connectionTimeoutMillis: 5000,
  });
  await client.connect();
  // pg also emits 'error' when the server ends the connection, and without a listener that
  // event would end the process. The query in progress rejects by itself.
  client.on('error', () => undefined);
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) {
      try {
        await client.query(`CREATE DATABASE ${quoteIdentifier(name)}`);
        logger.info({ database: name }, 'created database');
      } catch (error) {
        // Another replica may have created it between the check and the CREATE.
        if ((error as { code?: string }).code !== '42P04') {
          throw error;
        }
      }
    }
  } finally {
    await client.end();
  }
}

export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
