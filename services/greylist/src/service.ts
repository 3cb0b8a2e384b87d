/**
 * Wires the greylist service: Redis, the greylist, the static whitelists, the SPF check and the
 * `greylist.check` RPC consumer on RabbitMQ. main.ts runs it as a process and tests run it in-process.
 */
import { Broker } from '@secondary-mx/amqp';
import { QUEUE } from '@secondary-mx/contracts';
import type { Logger } from '@secondary-mx/logger';
import { createCheckHandler } from './check-handler.ts';
import { Greylist } from './greylist.ts';
import { GreylistPolicy } from './policy.ts';
import { closeRedis, connectRedis, whenRedisReady } from './redis.ts';
import { findSettingsProblem, type GreylistSettings } from './settings.ts';
import { createSpfCheck } from './spf.ts';
import { StaticWhitelist } from './static-whitelist.ts';

/** Checks in flight per replica. Each is a few DNS lookups and one short Redis round trip. */
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
    autoWhitelistPasses: settings.MX_GREYLIST_AUTO_WHITELIST,
  });
  const whitelist = new StaticWhitelist({
    clients: settings.MX_GREYLIST_WHITELIST_CLIENTS,
    names: settings.MX_GREYLIST_WHITELIST_NAMES,
    senders: settings.MX_GREYLIST_WHITELIST_SENDERS,
  });
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

  return {
    async start() {
      await whenRedisReady(redis);
      const handler = createCheckHandler(policy, logger, settings.MX_GREYLIST_DELAY);
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
