/**
 * Recognizes the PostgreSQL errors that mean "try again later" rather than a bug: the server is
 * unreachable or refuses connections, or the schema has not been migrated yet. queue-store owns
 * the migrations, so admin-api reports a missing schema and waits for it.
 */

export interface DatabaseUnavailable {
  reason: 'unreachable' | 'schema-missing';
  message: string;
}

/** Node socket errors seen when the server is down or the network path is broken. */
const SOCKET_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
]);

/** SQLSTATE codes (PostgreSQL appendix A) of a server that cannot serve this database now. */
const UNAVAILABLE_SQLSTATES = new Set([
  '28000', // invalid_authorization_specification: no pg_hba.conf entry, for example
  '28P01', // invalid_password
  '3D000', // invalid_catalog_name: the database does not exist yet
  '53300', // too_many_connections
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
]);

/** undefined_table and undefined_object (a missing enum type): the migrations have not run. */
const SCHEMA_SQLSTATES = new Set(['42P01', '42704']);

/** Messages of node-postgres errors that carry no code. */
const POOL_FAILURE_PATTERN =
  /timeout exceeded when trying to connect|connection terminated|query read timeout/i;

export function classifyDatabaseError(error: unknown): DatabaseUnavailable | undefined {
  if (!(error instanceof Error)) {
    return undefined;
  }
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && SCHEMA_SQLSTATES.has(code)) {
    return {
      reason: 'schema-missing',
      message: `database schema is missing (${error.message}). Start queue-store to apply the migrations.`,
    };
  }
  const unreachable =
    (typeof code === 'string' &&
      (SOCKET_ERROR_CODES.has(code) || UNAVAILABLE_SQLSTATES.has(code) || code.startsWith('08'))) ||
    POOL_FAILURE_PATTERN.test(error.message);
  if (unreachable) {
    return {
      reason: 'unreachable',
      message: `PostgreSQL is unavailable (${error.message || code}). Retry later.`,
    };
  }
  return undefined;
}
