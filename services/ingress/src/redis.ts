/**
 * The Redis connection of ingress, used for the recipient-verification cache only. ioredis
 * reconnects by itself. While Redis is down, commands fail at once and callers treat that as a
 * cache miss, so an outage of Redis never stops mail.
 */
import type { Logger } from '@secondary-mx/logger';
import { Redis } from 'ioredis';

/** A cache lookup slower than this is worth less than asking the primary. */
const COMMAND_TIMEOUT_MS = 1000;
const ERROR_LOG_INTERVAL_MS = 10_000;

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 15_000;

/** Doubles from RECONNECT_MIN_MS to RECONNECT_MAX_MS; attempt counts from 1. */
function reconnectDelay(attempt: number): number {
  return Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** Math.min(attempt - 1, 10));
}

export function connectRedis(url: string, logger: Logger): Redis {
  const redis = new Redis(url, {
    connectionName: 'ingress',
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: COMMAND_TIMEOUT_MS,
    // ioredis calls this before every reconnection attempt and never gives up while it returns
    // a number.
    retryStrategy: (attempt: number) => {
      const delay = reconnectDelay(attempt);
      logger.info({ attempt, retryInMs: delay }, 'Redis reconnecting');
      return delay;
    },
  });
  let lastLoggedAt = 0;
  let suppressed = 0;
  redis.on('error', (error: unknown) => {
    const now = Date.now();
    if (now - lastLoggedAt < ERROR_LOG_INTERVAL_MS) {
      suppressed += 1;
      return;
    }
    logger.warn({ err: error, suppressed }, 'Redis connection error, retrying');
    lastLoggedAt = now;
    suppressed = 0;
  });
  redis.on('ready', () => logger.info('Redis connected'));
  return redis;
}

/** Closes the connection: QUIT when connected, otherwise stops reconnecting at once. */
export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === 'ready') {
    await redis.quit();
    return;
  }
  redis.disconnect();
}
