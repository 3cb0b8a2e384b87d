/** Readiness checks of the backends, shared by /health and /metrics. */
import type { Broker } from '@secondary-mx/amqp';
import type { Pool } from '@secondary-mx/db';
import { classifyDatabaseError } from './database-errors.ts';

/** How long /health waits for PostgreSQL before it reports it as unreachable. */
const DATABASE_CHECK_TIMEOUT_MS = 3000;

export type DatabaseStatus = 'ok' | 'unreachable' | 'schema missing' | 'failed';
export type RabbitmqStatus = 'ok' | 'disconnected';

/**
 * Checks that PostgreSQL responds and that the domains table exists. The error, if any, is
 * returned for logging.
 */
export async function checkDatabase(
  pool: Pool,
): Promise<{ status: DatabaseStatus; error?: unknown }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(`timeout exceeded when trying to connect (${DATABASE_CHECK_TIMEOUT_MS} ms)`),
        ),
      DATABASE_CHECK_TIMEOUT_MS,
    );
  });
  try {
    const query = pool.query<{ ready: boolean }>(
      `SELECT to_regclass('domains') IS NOT NULL AS ready`,
    );
    const result = await Promise.race([query, timeout]);
    return { status: result.rows[0]?.ready ? 'ok' : 'schema missing' };
  } catch (error) {
    const reason = classifyDatabaseError(error)?.reason;
    return { status: reason === 'schema-missing' ? 'schema missing' : (reason ?? 'failed'), error };
  } finally {
    clearTimeout(timer);
  }
}

export function checkRabbitmq(broker: Broker): RabbitmqStatus {
  return broker.connected ? 'ok' : 'disconnected';
}
