import { CLOSE_MARGIN_MS, handleShutdown } from '@secondary-mx/lifecycle';
import { createLogger } from '@secondary-mx/logger';
import { startQueueStore } from './service.ts';
import { loadQueueStoreSettings } from './settings.ts';

const settings = loadQueueStoreSettings();
const logger = createLogger('queue-store', settings.MX_LOG_LEVEL);
let service: Awaited<ReturnType<typeof startQueueStore>> | undefined;
handleShutdown({
  logger,
  stop: async () => {
    await service?.stop();
  },
  timeoutMs: settings.MX_SHUTDOWN_GRACE + CLOSE_MARGIN_MS,
});
service = await startQueueStore(settings, logger);
