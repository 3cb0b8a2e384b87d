/**
 * Health and error counting of a pool for metrics: a ping with a time limit, and a hook that
 * reports every failed connect, failed query and lost idle connection.
 */
import type pg from 'pg';

/**
 * Kinds of PostgreSQL failures reported by observeDatabaseErrors: a connection could not be
 * opened, a query failed (any error the server or the driver returned), or an idle pooled
 * connection was lost.
 */
export const DATABASE_ERROR_KINDS = ['connect', 'query', 'idle'] as const;
export type DatabaseErrorKind = (typeof DATABASE_ERROR_KINDS)[number];

type Callback = (error: Error | undefined, ...rest: unknown[]) => void;

/**
 * Reports every failure of the pool's connections to the listener. Wraps pool.connect and the
 * query method of every client the pool opens from now on, so call it right after createPool.
 */
export function observeDatabaseErrors(
  pool: pg.Pool,
  listener: (kind: DatabaseErrorKind) => void,
): void {
  pool.on('error', () => listener('idle'));

  // pool.query() checks out its client through this.connect(callback), so both forms pass here.
  const connect = pool.connect.bind(pool) as (callback?: Callback) => unknown;
  (pool as { connect: unknown }).connect = (callback?: Callback) => {
    if (callback) {
      return connect((error, ...rest) => {
        if (error) {
          listener('connect');
        }
        callback(error, ...rest);
      });
    }
    return (connect() as Promise<pg.PoolClient>).catch((error: unknown) => {
      listener('connect');
      throw error;
    });
  };

  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as { query: unknown }).query = (...args: unknown[]) => {
      const last = args.at(-1);
      if (typeof last === 'function') {
        args[args.length - 1] = (error: Error | undefined, ...rest: unknown[]) => {
          if (error) {
            listener('query');
          }
          (last as Callback)(error, ...rest);
        };
        return query(...args);
      }
      const result = query(...args);
      if (result instanceof Promise) {
        return result.catch((error: unknown) => {
          listener('query');
          throw error;
        });
      }
      // A submittable such as a cursor reports its own errors.
      return result;
    };
  });
}

/** Runs `SELECT 1`; resolves true when it returned within timeoutMs. */
export async function pingDatabase(pool: pg.Pool, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  const ping = pool.query('SELECT 1').then(
    () => true,
    () => false,
  );
  try {
    return await Promise.race([ping, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
