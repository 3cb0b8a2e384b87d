/**
 * Process lifecycle shared by every service: a clean stop on SIGTERM or SIGINT within a time
 * limit, and a logged exit on an error nothing else caught.
 */
import type { Logger } from '@secondary-mx/logger';

/**
 * Time a stop may take beyond the grace of the work in flight (MX_SHUTDOWN_GRACE), for closing
 * the connections to RabbitMQ, PostgreSQL and Redis.
 */
export const CLOSE_MARGIN_MS = 10_000;

export interface ShutdownOptions {
  logger: Logger;
  /** Stops the service: stop accepting work, finish or hand back work in flight, disconnect. */
  stop: () => Promise<void>;
  /**
   * After this long the process exits with status 1 even if stop() has not finished. It must be
   * longer than the grace that stop() gives to work in flight, or a clean stop is cut short.
   */
  timeoutMs?: number;
}

/**
 * Installs the signal and error handlers. Call it before the service starts, so a signal that
 * comes while it still connects stops it cleanly too. The first SIGTERM or SIGINT runs stop()
 * and exits 0 when it resolves; a second one exits with status 1 at once.
 */
export function handleShutdown({ logger, stop, timeoutMs = 30_000 }: ShutdownOptions): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second stop signal, exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, timeoutMs }, 'stopping');
    const timer = setTimeout(() => {
      logger.error({ timeoutMs }, 'stop timed out, exiting');
      process.exit(1);
    }, timeoutMs);
    timer.unref();
    stop().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('unhandledRejection', (reason) => {
    logger.fatal({ err: reason }, 'unhandled promise rejection, exiting');
    process.exit(1);
  });
  process.on('uncaughtException', (error) => {
    logger.fatal({ err: error }, 'uncaught exception, exiting');
    process.exit(1);
  });
}
