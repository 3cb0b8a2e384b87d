/**
 * Prometheus text exposition (format 0.0.4) of the spool and the domains, read from PostgreSQL
 * on every scrape, so every admin-api replica reports the same totals.
 */
import type { Broker } from '@secondary-mx/amqp';
import { DOMAIN_STATES, RECIPIENT_STATES } from '@secondary-mx/contracts';
import type { Pool } from '@secondary-mx/db';
import type { FastifyBaseLogger } from 'fastify';
import { checkDatabase, checkRabbitmq } from './checks.ts';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

interface Gauge {
  name: string;
  help: string;
  samples: { labels?: Record<string, string>; value: number }[];
}

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

function stateGauge(
  name: string,
  help: string,
  states: readonly string[],
  counts: Map<string, number>,
): Gauge {
  return {
    name,
    help,
    samples: states.map((state) => ({ labels: { state }, value: counts.get(state) ?? 0 })),
  };
}

function render(gauges: Gauge[]): string {
  const lines: string[] = [];
  for (const gauge of gauges) {
    lines.push(`# HELP ${gauge.name} ${gauge.help}`, `# TYPE ${gauge.name} gauge`);
    for (const sample of gauge.samples) {
      const labels = Object.entries(sample.labels ?? {})
        .map(([key, value]) => `${key}="${value}"`)
        .join(',');
      lines.push(`${gauge.name}${labels ? `{${labels}}` : ''} ${sample.value}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Collects the metrics. While PostgreSQL is unavailable only the `_up` gauges are reported, so
 * a scrape does not fail because of a backend.
 */
export async function collectMetrics(
  pool: Pool,
  broker: Broker,
  logger: FastifyBaseLogger,
): Promise<string> {
  const rabbitmqUp = checkRabbitmq(broker) === 'ok' ? 1 : 0;
  let counts: { recipients: Map<string, number>; domains: Map<string, number> } | undefined;
  if ((await checkDatabase(pool)).status === 'ok') {
    try {
      const [recipients, domains] = await Promise.all([
        countByState(pool, 'recipients'),
        countByState(pool, 'domains'),
      ]);
      counts = { recipients, domains };
    } catch (error) {
      logger.warn({ err: error }, 'counting recipients and domains for /metrics failed');
    }
  }

  const gauges: Gauge[] = [
    {
      name: 'secondary_mx_database_up',
      help: 'Whether PostgreSQL responds and has the schema (1) or not (0).',
      samples: [{ value: counts ? 1 : 0 }],
    },
    {
      name: 'secondary_mx_rabbitmq_up',
      help: 'Whether this admin-api is connected to RabbitMQ (1) or not (0).',
      samples: [{ value: rabbitmqUp }],
    },
  ];
  if (counts) {
    gauges.push(
      stateGauge(
        'secondary_mx_recipients',
        'Recipients in the spool by state.',
        RECIPIENT_STATES,
        counts.recipients,
      ),
      stateGauge('secondary_mx_domains', 'Member domains by state.', DOMAIN_STATES, counts.domains),
    );
  }
  return render(gauges);
}
