import type { Logger } from '@secondary-mx/logger';
import pg from 'pg';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
/** A pool or a client inside a transaction: anything that runs queries. */
export type Queryable = Pick<pg.Pool, 'query'>;

/**
 * Limit for one query, measured by the client. The server-side statement_timeout cannot end a
 * query whose connection went silent, for example behind a broken network path. Such a query
 * would otherwise wait for TCP keepalive, which takes hours with Linux's default settings.
 * NOTE: a guess that leaves room for the largest maintenance statements. A statement that
 * really runs longer fails with "Query read timeout".
 */
const QUERY_TIMEOUT_MS = 60_000;

/**
 * Runs work in one transaction: COMMIT when it resolves, ROLLBACK when it throws. A client
 * whose ROLLBACK fails too (connection lost, query timed out) is discarded, not reused.
 */
export async function withTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  // pg emits 'error' on a client whose server ends the connection (a restart, say). The error
  // is kept so the client is released with it, and createPool's listener keeps the process
  // alive. The client's next query rejects as not queryable, so the transaction still fails.
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
    await client.query('ROLLBACK').catch((rollbackError: Error) => {
      connectionError ??= rollbackError;
    });
    throw error;
  } finally {
    client.off('error', onError);
    // With an error the pool discards the client instead of handing it out again.
    client.release(connectionError);
  }
}

/**
 * Creates a pool that survives restarts of PostgreSQL: connections that fail are logged and
 * replaced by new ones on the next query, and no query waits without limit.
 */
export function createPool(
  databaseUrl: string,
  logger: Logger,
  max = 10,
  queryTimeoutMs = QUERY_TIMEOUT_MS,
): pg.Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
    query_timeout: queryTimeoutMs,
    keepAlive: true,
    application_name: 'secondary-mx',
  });
  // An idle client that loses its server emits here; without a listener the process would exit.
  pool.on('error', (error) => logger.warn({ err: error }, 'PostgreSQL idle connection failed'));
  // pg-pool listens for errors of idle clients only. A client in use whose connection drops
  // emits 'error' as well, which would end the process without a listener. The query in
  // progress fails with the same error, and its caller handles it.
  pool.on('connect', (client) => {
    client.on('error', (error) =>
      logger.debug({ err: error }, 'PostgreSQL connection in use failed'),
    );
  });
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
