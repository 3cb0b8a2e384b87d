/**
 * The Redis connection of the greylist service. ioredis reconnects by itself with backoff, and
 * this module logs its errors at most once per interval. While Redis is down, commands fail at
 * once, so a check is requeued instead of waiting past the caller's timeout.
 */
import type { Logger } from '@secondary-mx/logger';
import { Redis } from 'ioredis';
import { throttle } from './log-throttle.ts';

const ERROR_LOG_INTERVAL_MS = 10_000;
/** A stuck Redis must not hold a consumer slot forever, and a verdict this late is useless. */
const COMMAND_TIMEOUT_MS = 5_000;

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 15_000;

/** Doubles from RECONNECT_MIN_MS to RECONNECT_MAX_MS; attempt counts from 1. */
function reconnectDelay(attempt: number): number {
  return Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** Math.min(attempt - 1, 10));
}

export function connectRedis(url: string, logger: Logger): Redis {
  const redis = new Redis(url, {
    connectionName: 'greylist',
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
  let lastError: unknown;
  const logError = throttle(ERROR_LOG_INTERVAL_MS, (suppressed) =>
    logger.warn({ err: lastError, suppressed }, 'Redis connection error, retrying'),
  );
  redis.on('error', (error: unknown) => {
    lastError = error;
    logError();
  });

  let connectedBefore = false;
  redis.on('ready', () => {
    logger.info(connectedBefore ? 'Redis reconnected' : 'Redis connected');
    connectedBefore = true;
  });
  return redis;
}

/** Resolves once the client is connected and ready, or at once if it is. */
export function whenRedisReady(redis: Redis): Promise<void> {
  if (redis.status === 'ready') {
    return Promise.resolve();
  }
  return new Promise((resolve) => redis.once('ready', () => resolve()));
}

/** Closes the connection: QUIT when connected, otherwise stops reconnecting at once. */
export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === 'ready') {
    await redis.quit();
    return;
  }
  redis.disconnect();
}
