/**
 * The greylist service in this process, on a harness's RabbitMQ prefix and a Redis prefix of its
 * own, for tests of the routes that call greylist.admin.
 */
import { loadSettings } from '@secondary-mx/config';
import { LOCAL_AMQP_URL, LOCAL_REDIS_URL, uniqueName } from '@secondary-mx/testkit';
import { closeRedis, connectRedis, whenRedisReady } from '../../greylist/src/redis.ts';
import { createGreylistService } from '../../greylist/src/service.ts';
import { SETTING_NAMES } from '../../greylist/src/settings.ts';
import { logger } from './support.ts';

export interface TestGreylist {
  redisPrefix: string;
  /** Stops the service and deletes its Redis keys. */
  stop(): Promise<void>;
}

/**
 * Starts the service with a 1 s delay, a 60 s retry window and the given settings, such as
 * DNS_SERVERS and the MX_GREYLIST_WHITELIST_* lists.
 */
export async function startTestGreylist(
  amqpPrefix: string,
  env: Record<string, string>,
): Promise<TestGreylist> {
  const redisPrefix = `${uniqueName('smx_admin_greylist')}:`;
  const settings = loadSettings(SETTING_NAMES, {
    AMQP_URL: LOCAL_AMQP_URL,
    REDIS_URL: LOCAL_REDIS_URL,
    MX_AMQP_PREFIX: amqpPrefix,
    MX_REDIS_PREFIX: redisPrefix,
    MX_HOSTNAME: 'mx2.example.net',
    MX_GREYLIST_DELAY: '1s',
    MX_GREYLIST_RETRY_WINDOW: '60s',
    ...env,
  });
  const service = createGreylistService(settings, logger);
  await service.start();

  return {
    redisPrefix,
    async stop() {
      await service.stop();
      // The greylist service's own Redis client, since admin-api does not depend on ioredis.
      const redis = connectRedis(LOCAL_REDIS_URL, logger);
      await whenRedisReady(redis);
      const keys = await redis.keys(`${redisPrefix}*`);
      if (keys.length > 0) {
        await redis.del(...keys);
      }
      await closeRedis(redis);
    },
  };
}
