/**
 * Wires the greylist service: Redis, the greylist, the static whitelists, the SPF check and the
 * `greylist.check` and `greylist.admin` RPC consumers on RabbitMQ. main.ts runs it as a process
 * and tests run it in-process.
 */
import { Broker } from '@secondary-mx/amqp';
import { QUEUE } from '@secondary-mx/contracts';
import type { Logger } from '@secondary-mx/logger';
import { type MetricsServer, startMetricsServer } from '@secondary-mx/metrics';
import { createAdminHandler } from './admin-handler.ts';
import { createCheckHandler } from './check-handler.ts';
import { Greylist } from './greylist.ts';
import { createGreylistMetrics } from './metrics.ts';
import { GreylistPolicy } from './policy.ts';
import { closeRedis, connectRedis, whenRedisReady } from './redis.ts';
import { findSettingsProblem, type GreylistSettings } from './settings.ts';
import { createSpfCheck } from './spf.ts';
import { WhitelistStore } from './whitelist-store.ts';

/** Checks in flight per replica. Each is a few DNS lookups and one short Redis round trip. */
const PREFETCH = 50;
/** Admin requests in flight per replica; they come from administrators, one at a time. */
const ADMIN_PREFETCH = 5;

export interface GreylistService {
  /**
   * Starts the metrics and health listener when MX_GREYLIST_METRICS_LISTEN is set, waits for
   * Redis, then connects to RabbitMQ and serves checks. Resolves once serving. Rejects when
   * the listener cannot bind.
   */
  start(): Promise<void>;
  /**
   * Stops consuming, lets checks in flight finish within MX_SHUTDOWN_GRACE, then closes
   * RabbitMQ, Redis and the listener.
   */
  stop(): Promise<void>;
  /** The metrics and health listener, once start() has opened it. */
  readonly metricsServer: MetricsServer | undefined;
}

/**
 * Creates the service and opens its Redis connection. start() begins serving. Throws RangeError
 * for settings that cannot work together.
 */
export function createGreylistService(settings: GreylistSettings, logger: Logger): GreylistService {
  // Checked before connecting, so an invalid combination leaves no Redis client behind.
  const problem = findSettingsProblem(settings);
  if (problem !== undefined) {
    throw new RangeError(problem);
  }

  const redis = connectRedis(settings.REDIS_URL, logger);
  const greylist = new Greylist(redis, {
    keyPrefix: settings.MX_REDIS_PREFIX,
    delayMs: settings.MX_GREYLIST_DELAY,
    retryWindowMs: settings.MX_GREYLIST_RETRY_WINDOW,
    maxAgeMs: settings.MX_GREYLIST_MAX_AGE,
    autoWhitelistPasses: settings.MX_GREYLIST_AUTO_WHITELIST,
  });
  const whitelist = new WhitelistStore(
    redis,
    settings.MX_REDIS_PREFIX,
    {
      clients: settings.MX_GREYLIST_WHITELIST_CLIENTS,
      names: settings.MX_GREYLIST_WHITELIST_NAMES,
      senders: settings.MX_GREYLIST_WHITELIST_SENDERS,
    },
    logger,
  );
  // Half of the time ingress waits, so the verdict still arrives when SPF runs out of time.
  const spfCheck = createSpfCheck({
    dnsServers: settings.DNS_SERVERS,
    timeoutMs: Math.floor(settings.MX_GREYLIST_TIMEOUT / 2),
    hostname: settings.MX_HOSTNAME,
  });
  const policy = new GreylistPolicy(greylist, whitelist, spfCheck);
  const broker = new Broker({
    url: settings.AMQP_URL,
    prefix: settings.MX_AMQP_PREFIX,
    logger,
    connectionName: 'greylist',
  });
  const metrics = createGreylistMetrics({
    rabbitmqConnected: () => broker.connected,
    redisReady: () => redis.status === 'ready',
  });
  broker.onError((kind) => metrics.countRabbitmqError(kind));
  redis.on('error', () => metrics.countRedisError('connection'));
  let metricsServer: MetricsServer | undefined;

  return {
    get metricsServer() {
      return metricsServer;
    },
    async start() {
      if (settings.MX_GREYLIST_METRICS_LISTEN !== undefined) {
        // Before waiting for Redis, so /health reports what the service waits for.
        metricsServer = await startMetricsServer(
          metrics.registry,
          settings.MX_GREYLIST_METRICS_LISTEN,
          logger,
          {
            redis: () => (redis.status === 'ready' ? 'ok' : 'disconnected'),
            rabbitmq: () => (broker.connected ? 'ok' : 'disconnected'),
          },
        );
      }
      await whenRedisReady(redis);
      await whitelist.start();
      const handler = createCheckHandler(policy, logger, settings.MX_GREYLIST_DELAY, metrics);
      broker.serve(QUEUE.greylistCheck, handler, { prefetch: PREFETCH });
      const adminHandler = createAdminHandler(policy, whitelist, logger);
      broker.serve(QUEUE.greylistAdmin, adminHandler, { prefetch: ADMIN_PREFETCH });
      await broker.start();
      logger.info({ queue: broker.name(QUEUE.greylistCheck) }, 'serving greylist checks');
    },
    async stop() {
      await broker.stop(settings.MX_SHUTDOWN_GRACE);
      whitelist.stop();
      await closeRedis(redis);
      await metricsServer?.close();
    },
  };
}
