/**
 * Prometheus metrics of queue-store, in a registry of its own that packages/metrics serves on
 * MX_QUEUE_STORE_METRICS_LISTEN. The spool gauges are read from PostgreSQL on every scrape, so
 * every queue-store replica reports the same totals. While PostgreSQL is unavailable they are
 * left out and `secondary_mx_database_up` is 0, so a scrape never fails because of it.
 */
import { BROKER_ERROR_KINDS, type Broker } from '@secondary-mx/amqp';
import { RECIPIENT_STATES } from '@secondary-mx/contracts';
import {
  countSpool,
  DATABASE_ERROR_KINDS,
  oldestWaiting,
  type Pool,
  type SpoolCounts,
} from '@secondary-mx/db';
import type { Logger } from '@secondary-mx/logger';
import { registerBackendMetrics } from '@secondary-mx/metrics';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { DsnEvent } from './bounces.ts';

/** The `domain` label of recipients outside the member domains, mostly DSNs to senders. */
export const OTHER_DOMAINS = '(other)';

const DSN_EVENTS: readonly DsnEvent[] = ['failed', 'expired', 'delayed', 'relayed'];

interface SpoolSnapshot {
  counts: SpoolCounts;
  oldest: Map<'mail' | 'dsn', Date>;
  readAt: number;
}

export interface QueueStoreMetrics {
  registry: Registry;
  /** Counts a DSN queued for the sender, after its transaction committed. */
  countDsn(event: DsnEvent): void;
  /** Counts a message committed to the spool; a repeated queue id is not counted again. */
  countStored(): void;
  countDatabaseError(kind: string): void;
  countRabbitmqError(kind: string): void;
}

export interface QueueStoreMetricSources {
  pool: Pool;
  broker: Broker;
  logger: Logger;
}

export function createQueueStoreMetrics(sources: QueueStoreMetricSources): QueueStoreMetrics {
  const { pool, broker, logger } = sources;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  let inFlight: Promise<SpoolSnapshot | undefined> | undefined;
  let failing = false;
  const readSpool = async (): Promise<SpoolSnapshot | undefined> => {
    try {
      const [counts, oldest] = await Promise.all([countSpool(pool), oldestWaiting(pool)]);
      if (failing) {
        logger.info('reading the spool for /metrics works again');
        failing = false;
      }
      return { counts, oldest, readAt: Date.now() };
    } catch (error) {
      // Logged once per outage; secondary_mx_database_up shows how long it lasts.
      if (!failing) {
        logger.warn({ err: error }, 'reading the spool for /metrics failed');
        failing = true;
      }
      return undefined;
    }
  };
  // prom-client starts the collect of every metric of a scrape before awaiting any, so the
  // gauges of one scrape share this read while it is in flight and see the same figures.
  const snapshot = (): Promise<SpoolSnapshot | undefined> => {
    if (!inFlight) {
      inFlight = readSpool().finally(() => {
        inFlight = undefined;
      });
    }
    return inFlight;
  };

  new Gauge({
    name: 'secondary_mx_spool_recipients',
    help: `Recipients in the spool by member domain and state, with domain="${OTHER_DOMAINS}" for recipients outside the member domains (mostly DSNs to senders). Final states count until MX_RETENTION removes the message.`,
    labelNames: ['domain', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      const read = await snapshot();
      if (!read) {
        return;
      }
      for (const [domain, states] of read.counts.byDomain) {
        for (const [state, count] of states) {
          this.set({ domain, state }, count);
        }
      }
      for (const state of RECIPIENT_STATES) {
        this.set({ domain: OTHER_DOMAINS, state }, read.counts.other.get(state) ?? 0);
      }
    },
  });
  new Gauge({
    name: 'secondary_mx_spool_oldest_waiting_seconds',
    help: 'Age of the oldest message with a recipient in state queued, active or deferred, by kind (mail, or dsn for DSNs we send); 0 when there is none.',
    labelNames: ['kind'],
    registers: [registry],
    async collect() {
      this.reset();
      const read = await snapshot();
      if (!read) {
        return;
      }
      for (const kind of ['mail', 'dsn'] as const) {
        const receivedAt = read.oldest.get(kind);
        const age = receivedAt ? Math.max(0, read.readAt - receivedAt.getTime()) / 1000 : 0;
        this.set({ kind }, age);
      }
    },
  });
  const dsns = new Counter({
    name: 'secondary_mx_dsns_total',
    help: 'DSNs queued for senders, by event: failed, expired, delayed (a delay warning) or relayed (NOTIFY=SUCCESS to a next hop without DSN).',
    labelNames: ['event'],
    registers: [registry],
  });
  for (const event of DSN_EVENTS) {
    dsns.inc({ event }, 0);
  }
  const stored = new Counter({
    name: 'secondary_mx_messages_stored_total',
    help: 'Messages from ingress committed to the spool.',
    registers: [registry],
  });

  const countDatabaseError = registerBackendMetrics(registry, {
    backend: 'database',
    upMeaning: 'able to read the spool in PostgreSQL at this scrape',
    errorMeaning:
      'PostgreSQL failures: connect (a connection could not be opened), query (a statement failed), idle (a pooled connection was lost)',
    errorKinds: DATABASE_ERROR_KINDS,
    isUp: async () => (await snapshot()) !== undefined,
  });
  const countRabbitmqError = registerBackendMetrics(registry, {
    backend: 'rabbitmq',
    upMeaning: 'connected to RabbitMQ',
    errorMeaning: 'RabbitMQ failures: connect, connection (lost), channel, publish (not confirmed)',
    errorKinds: BROKER_ERROR_KINDS,
    isUp: () => broker.connected,
  });

  return {
    registry,
    countDsn(event) {
      dsns.inc({ event });
    },
    countStored() {
      stored.inc();
    },
    countDatabaseError,
    countRabbitmqError,
  };
}
