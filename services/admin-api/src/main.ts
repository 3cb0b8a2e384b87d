/**
 * admin-api: the HTTP API of the administrators. It reads and writes the domains and the spool
 * in PostgreSQL and sends control events on RabbitMQ. It never migrates the database
 * (queue-store does) and keeps serving, with 503 replies, while either backend is down.
 */
import { Broker } from '@secondary-mx/amqp';
import { loadSettingsOrExit } from '@secondary-mx/config';
import { createPool } from '@secondary-mx/db';
import { CLOSE_MARGIN_MS, handleShutdown } from '@secondary-mx/lifecycle';
import { createLogger } from '@secondary-mx/logger';
import { buildApp } from './app.ts';
import { ADMIN_API_SETTINGS } from './settings.ts';

const SERVICE = 'admin-api';

const settings = loadSettingsOrExit(SERVICE, ADMIN_API_SETTINGS);
const logger = createLogger(SERVICE, settings.MX_LOG_LEVEL);

const pool = createPool(settings.DATABASE_URL, logger);
const broker = new Broker({
  url: settings.AMQP_URL,
  prefix: settings.MX_AMQP_PREFIX,
  logger,
  connectionName: `${SERVICE}@${settings.MX_HOSTNAME}`,
});
// Not awaited: the API serves while RabbitMQ is down, and the broker keeps reconnecting.
void broker.start();

const app = await buildApp({ pool, broker, token: settings.MX_ADMIN_TOKEN, logger, settings });

/** Resolves false when the grace ran out first. */
function withinGrace(work: Promise<void>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const graceOver = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), settings.MX_SHUTDOWN_GRACE);
  });
  return Promise.race([work.then(() => true), graceOver]).finally(() => clearTimeout(timer));
}

handleShutdown({
  logger,
  // fastify's close() stops listening and waits for the requests in progress.
  stop: async () => {
    if (!(await withinGrace(app.close()))) {
      logger.warn(
        { graceMs: settings.MX_SHUTDOWN_GRACE },
        'requests still in progress after the shutdown grace, closing anyway',
      );
    }
    await broker.stop(0);
    await pool.end();
  },
  timeoutMs: settings.MX_SHUTDOWN_GRACE + CLOSE_MARGIN_MS,
});

const { host, port } = settings.MX_ADMIN_LISTEN;
try {
  await app.listen({ host, port });
} catch (error) {
  logger.fatal({ err: error, host, port }, 'admin API could not listen');
  process.exit(1);
}
