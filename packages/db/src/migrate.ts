import { fileURLToPath } from 'node:url';
import type { Logger } from '@secondary-mx/logger';
import { runner } from 'node-pg-migrate';

const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url));

/**
 * Applies every pending migration. An advisory lock makes concurrent replicas wait for each
 * other, so starting several queue-store instances at once is safe.
 */
export async function migrate(databaseUrl: string, logger: Logger): Promise<void> {
  const applied = await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    direction: 'up',
    migrationsTable: 'pgmigrations',
    advisoryLockMode: 'wait',
    singleTransaction: true,
    log: (message: string) => logger.debug({ migration: true }, message),
  });
  if (applied.length > 0) {
    logger.info({ migrations: applied.map((migration) => migration.name) }, 'applied migrations');
  }
}
