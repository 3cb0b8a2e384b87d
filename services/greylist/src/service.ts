/**
 * Wires the greylist service: Redis, the greylist and the `greylist.check` RPC consumer on
 * RabbitMQ. main.ts runs it as a process and tests run it in-process.
 */
import { Broker } from '@secondary-mx/amqp';
import { QUEUE } from '@secondary-mx/contracts';
import type { Logger } from '@secondary-mx/logger';
import { createCheckHandler } from './check-handler.ts';
import { Greylist } from './greylist.ts';
import { closeRedis, connectRedis, whenRedisReady } from './redis.ts';
import { findSettingsProblem, type GreylistSettings } from './settings.ts';

/** Checks in flight per replica. Each is one short Redis round trip. */
const PREFETCH = 50;

export interface GreylistService {
  /** Waits for Redis, then connects to RabbitMQ and serves checks. Resolves once serving. */
  start(): Promise<void>;
  /** Stops consuming, lets checks in flight finish, then closes RabbitMQ and Redis. */
  stop(): Promise<void>;
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
  });
  const broker = new Broker({
    url: settings.AMQP_URL,
    prefix: settings.MX_AMQP_PREFIX,
    logger,
    connectionName: 'greylist',
  });

  return {
    async start() {
      await whenRedisReady(redis);
      const handler = createCheckHandler(greylist, logger, settings.MX_GREYLIST_DELAY);
      broker.serve(QUEUE.greylistCheck, handler, { prefetch: PREFETCH });
      await broker.start();
      logger.info({ queue: broker.name(QUEUE.greylistCheck) }, 'serving greylist checks');
    },
    async stop() {
      await broker.stop();
      await closeRedis(redis);
    },
  };
}
