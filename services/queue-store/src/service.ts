/**
 * queue-store: owns the spool in PostgreSQL. Runs migrations at start, stores received
 * messages, schedules due recipients to delivery workers and records their results.
 */
import { Broker } from '@secondary-mx/amqp';
import { EXCHANGE, parseControlEvent, QUEUE } from '@secondary-mx/contracts';
import {
  createPool,
  ensureDatabase,
  flushDomain,
  migrate,
  observeDatabaseErrors,
  pingDatabase,
} from '@secondary-mx/db';
import type { Logger } from '@secondary-mx/logger';
import { type MetricsServer, startMetricsServer } from '@secondary-mx/metrics';
import type { BounceSettings } from './bounces.ts';
import { createDomainsListHandler } from './domains-list.ts';
import { Maintenance } from './maintenance.ts';
import { createQueueStoreMetrics } from './metrics.ts';
import { createResultsHandler } from './results.ts';
import { Scheduler } from './scheduler.ts';
import type { QueueStoreSettings } from './settings.ts';
import { createSpoolStoreHandler } from './spool-store.ts';

const DATABASE_RETRY_MS = 2000;
/** How long /health waits for `SELECT 1` before it reports PostgreSQL as unreachable. */
const DATABASE_CHECK_TIMEOUT_MS = 2000;

/** Creates the database and applies migrations, retrying while PostgreSQL is unreachable. */
async function prepareDatabase(settings: QueueStoreSettings, logger: Logger): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await ensureDatabase(settings.DATABASE_URL, logger);
      await migrate(settings.DATABASE_URL, logger);
      return;
    } catch (error) {
      logger.warn(
        { err: error, attempt, retryInMs: DATABASE_RETRY_MS },
        'database not ready, retrying',
      );
      await new Promise((resolve) => setTimeout(resolve, DATABASE_RETRY_MS));
    }
  }
}

export async function startQueueStore(settings: QueueStoreSettings, logger: Logger) {
  // The pool connects on first use, so it may be created before the database exists.
  const pool = createPool(settings.DATABASE_URL, logger, 20);
  const broker = new Broker({
    url: settings.AMQP_URL,
    prefix: settings.MX_AMQP_PREFIX,
    logger,
    connectionName: 'queue-store',
  });
  const metrics = createQueueStoreMetrics({ pool, broker, logger });
  observeDatabaseErrors(pool, (kind) => metrics.countDatabaseError(kind));
  broker.onError((kind) => metrics.countRabbitmqError(kind));

  // Opened before the migrations, so /health shows a start that waits for PostgreSQL.
  let prepared = false;
  let metricsServer: MetricsServer | undefined;
  if (settings.MX_QUEUE_STORE_METRICS_LISTEN !== undefined) {
    metricsServer = await startMetricsServer(
      metrics.registry,
      settings.MX_QUEUE_STORE_METRICS_LISTEN,
      logger,
      {
        database: async () => {
          if (!(await pingDatabase(pool, DATABASE_CHECK_TIMEOUT_MS))) {
            return 'unreachable';
          }
          return prepared ? 'ok' : 'migrating';
        },
        rabbitmq: () => (broker.connected ? 'ok' : 'disconnected'),
      },
    );
  }
  await prepareDatabase(settings, logger);
  prepared = true;
  const scheduler = new Scheduler({
    pool,
    broker,
    logger,
    intervalMs: settings.MX_SCHEDULER_INTERVAL,
    batch: settings.MX_SCHEDULER_BATCH,
    leaseMs: settings.MX_LEASE_TIME,
    messagesPerJob: settings.MX_MESSAGES_PER_CONNECTION,
    jobsPerDomain: settings.MX_DESTINATION_CONCURRENCY,
  });
  const bounces: BounceSettings = {
    reportingMta: settings.MX_HOSTNAME,
    fullContentLimit: settings.MX_BOUNCE_SIZE_LIMIT,
    bounceLifetimeMs: settings.MX_BOUNCE_LIFETIME,
  };
  const probes = { minMs: settings.MX_PROBE_INTERVAL_MIN, maxMs: settings.MX_PROBE_INTERVAL_MAX };
  const maintenance = new Maintenance({
    pool,
    broker,
    logger,
    intervalMs: Math.max(settings.MX_SCHEDULER_INTERVAL, 500),
    bounces,
    delayWarningsMs: settings.MX_DELAY_WARNINGS,
    retentionMs: settings.MX_RETENTION,
    probes,
    onDsnQueued: (event) => metrics.countDsn(event),
    onQueued: () => scheduler.kick(true),
  });

  broker.serve(
    QUEUE.spoolStore,
    createSpoolStoreHandler({
      pool,
      logger,
      queueLifetimeMs: settings.MX_QUEUE_LIFETIME,
      onStored: (inserted) => {
        if (inserted) {
          metrics.countStored();
        }
        scheduler.kick();
      },
    }),
    { prefetch: 64 },
  );
  broker.serve(QUEUE.domainsList, createDomainsListHandler(pool), { prefetch: 8 });
  broker.consume(
    QUEUE.deliveryResults,
    createResultsHandler({
      pool,
      logger,
      backoff: { minMs: settings.MX_RETRY_MIN, maxMs: settings.MX_RETRY_MAX },
      probes,
      bounces,
      onRecorded: () => scheduler.kick(true),
      onDsnQueued: (event) => metrics.countDsn(event),
    }),
    { prefetch: 64 },
  );
  broker.subscribe(EXCHANGE.control, (content) => {
    const event = parseControlEvent(content);
    if (event?.type === 'queue.changed') {
      scheduler.kick(true);
      maintenance.requestBounces();
    } else if (event?.type === 'flush') {
      void flushDomain(pool, event.domain).then(
        (recipients) => {
          logger.info({ domain: event.domain, recipients }, 'flush requested');
          scheduler.kick(true);
        },
        (error: unknown) => logger.error({ err: error, domain: event.domain }, 'flush failed'),
      );
    }
  });

  await broker.start();
  scheduler.start();
  maintenance.start();
  logger.info('queue-store started');

  return {
    metricsServer,
    /**
     * Stops taking requests and results, lets the spool writes and result writes in progress
     * commit within MX_SHUTDOWN_GRACE, ends the scheduler and maintenance passes in progress,
     * then disconnects. Messages not yet taken stay in their queues for another replica or the
     * next start.
     */
    async stop() {
      const idle = await broker.stopConsuming(settings.MX_SHUTDOWN_GRACE);
      if (!idle) {
        logger.warn(
          { graceMs: settings.MX_SHUTDOWN_GRACE },
          'requests still in progress after the shutdown grace, their messages are requeued',
        );
      }
      await scheduler.stop();
      await maintenance.stop();
      await broker.close();
      await pool.end();
      await metricsServer?.close();
    },
  };
}
