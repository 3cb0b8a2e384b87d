/**
 * Prometheus metrics (prom-client) of the spool and the domains, read from PostgreSQL on every
 * scrape, so every admin-api replica reports the same totals. While PostgreSQL is unavailable
 * the count gauges are left out and `secondary_mx_database_up` is 0, so a scrape never fails
 * because of a backend.
 */

import type { Broker } from '@secondary-mx/amqp';
import { DOMAIN_STATES, RECIPIENT_STATES } from '@secondary-mx/contracts';
import type { Pool } from '@secondary-mx/db';
import type { FastifyBaseLogger } from 'fastify';
import { Gauge, Registry } from 'prom-client';
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
  contentType: string;
  /** Reads the counts and returns the text exposition. */
  render(logger: FastifyBaseLogger): Promise<string>;
}

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

  return {
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
