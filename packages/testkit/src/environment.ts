/**
 * Isolation of one test run on the shared local servers: its own PostgreSQL database, Redis
 * key prefix and RabbitMQ queue prefix, so parallel or repeated runs never see each other.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { quoteIdentifier } from '@secondary-mx/db';
import pg from 'pg';

export const LOCAL_AMQP_URL = process.env.TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
export const LOCAL_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
export const LOCAL_POSTGRES_URL =
  process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432';

export function uniqueName(label: string): string {
  return `${label}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

/** Returns a TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/**
 * Names a fresh database for one test; queue-store creates it on start. drop() removes it,
 * disconnecting whatever still uses it.
 */
export function testDatabase(label = 'smx_test'): TestDatabase {
  const name = uniqueName(label).toLowerCase();
  return {
    name,
    url: `${LOCAL_POSTGRES_URL}/${name}`,
    async drop() {
      const client = new pg.Client({ connectionString: `${LOCAL_POSTGRES_URL}/postgres` });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

export interface TestEnvironment {
  database: TestDatabase;
  amqpPrefix: string;
  redisPrefix: string;
  /** Environment variables that point a service at this run's isolated resources. */
  env: Record<string, string>;
}

export function testEnvironment(label = 'smx'): TestEnvironment {
  const database = testDatabase(`${label}_test`);
  const id = uniqueName(label);
  const amqpPrefix = `${id}.`;
  const redisPrefix = `${id}:`;
  return {
    database,
    amqpPrefix,
    redisPrefix,
    env: {
      AMQP_URL: LOCAL_AMQP_URL,
      REDIS_URL: LOCAL_REDIS_URL,
      DATABASE_URL: database.url,
      MX_AMQP_PREFIX: amqpPrefix,
      MX_REDIS_PREFIX: redisPrefix,
      MX_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
      // Nothing answers on port 9, so a test that starts no DNS server of its own gets fast
      // failures instead of queries to the machine's resolver.
      DNS_SERVERS: '127.0.0.1:9',
      // Off, so parallel runs do not compete for the default ports. A test that reads the
      // metrics or the health sets port 0 or a free port.
      MX_INGRESS_METRICS_LISTEN: '',
      MX_GREYLIST_METRICS_LISTEN: '',
      MX_QUEUE_STORE_METRICS_LISTEN: '',
      MX_DELIVERY_METRICS_LISTEN: '',
    },
  };
}
