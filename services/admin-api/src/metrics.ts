/**
 * Prometheus metrics (prom-client) of the spool and the domains, read from PostgreSQL on every
 * scrape, so every admin-api replica reports the same totals. While PostgreSQL is unavailable
 * the count gauges are left out and `secondary_mx_database_up` is 0, so a scrape never fails
 * because of a backend.
 */

import { BROKER_ERROR_KINDS, type Broker } from '@secondary-mx/amqp';
import { DOMAIN_STATES, RECIPIENT_STATES } from '@secondary-mx/contracts';
import { DATABASE_ERROR_KINDS, observeDatabaseErrors, type Pool } from '@secondary-mx/db';
import type { FastifyBaseLogger } from 'fastify';
import { Counter, Gauge, Registry } from 'prom-client';
import { checkDatabase, checkRabbitmq } from './checks.ts';

// NOTE: these counts query the spool tables directly and belong in @secondary-mx/db once
// another service needs them.
async function countByState(
  pool: Pool,
  table: 'recipients' | 'domains',
): Promise<Map<string, number>> {
  const result = await pool.query<{ state: string; count: number }>(
    `SELECT state::text AS state, count(*)::int AS count FROM ${table} GROUP BY state`,
  );
  return new Map(result.rows.map((row) => [row.state, row.count]));
}

export interface AdminMetrics {
  registry: Registry;
  contentType: string;
  /** Reads the counts and returns the text exposition. */
  render(logger: FastifyBaseLogger): Promise<string>;
}

/**
 * Creates the registry and starts counting the errors of the pool and the broker. Call it once
 * per pool, because each call wraps the pool's methods again.
 */
export function createAdminMetrics(pool: Pool, broker: Broker): AdminMetrics {
  const registry = new Registry();
  const databaseUp = new Gauge({
    name: 'secondary_mx_database_up',
    help: 'Whether PostgreSQL responds and has the schema (1) or not (0).',
    registers: [registry],
  });
  const rabbitmqUp = new Gauge({
    name: 'secondary_mx_rabbitmq_up',
    help: 'Whether this admin-api is connected to RabbitMQ (1) or not (0).',
    registers: [registry],
  });
  const recipients = new Gauge({
    name: 'secondary_mx_recipients',
    help: 'Recipients in the spool by state.',
    labelNames: ['state'],
    registers: [registry],
  });
  const domains = new Gauge({
    name: 'secondary_mx_domains',
    help: 'Member domains by state.',
    labelNames: ['state'],
    registers: [registry],
  });

  const databaseErrors = new Counter({
    name: 'secondary_mx_database_errors_total',
    help: 'PostgreSQL failures: connect (a connection could not be opened), query (a statement failed), idle (a pooled connection was lost), by kind.',
    labelNames: ['kind'],
    registers: [registry],
  });
  for (const kind of DATABASE_ERROR_KINDS) {
    databaseErrors.inc({ kind }, 0);
  }
  observeDatabaseErrors(pool, (kind) => databaseErrors.inc({ kind }));
  const rabbitmqErrors = new Counter({
    name: 'secondary_mx_rabbitmq_errors_total',
    help: 'RabbitMQ failures: connect, connection (lost), channel, publish (not confirmed), by kind.',
    labelNames: ['kind'],
    registers: [registry],
  });
  for (const kind of BROKER_ERROR_KINDS) {
    rabbitmqErrors.inc({ kind }, 0);
  }
  broker.onError((kind) => rabbitmqErrors.inc({ kind }));

  return {
    registry,
    contentType: registry.contentType,
    async render(logger) {
      rabbitmqUp.set(checkRabbitmq(broker) === 'ok' ? 1 : 0);
      recipients.reset();
      domains.reset();
      let up = 0;
      if ((await checkDatabase(pool)).status === 'ok') {
        try {
          const [recipientCounts, domainCounts] = await Promise.all([
            countByState(pool, 'recipients'),
            countByState(pool, 'domains'),
          ]);
          for (const state of RECIPIENT_STATES) {
            recipients.set({ state }, recipientCounts.get(state) ?? 0);
          }
          for (const state of DOMAIN_STATES) {
            domains.set({ state }, domainCounts.get(state) ?? 0);
          }
          up = 1;
        } catch (error) {
          logger.warn({ err: error }, 'counting recipients and domains for /metrics failed');
        }
      }
      databaseUp.set(up);
      return registry.metrics();
    },
  };
}
