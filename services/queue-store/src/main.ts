import { handleShutdown } from '@secondary-mx/lifecycle';
import { createLogger } from '@secondary-mx/logger';
import { startQueueStore } from './service.ts';
import { loadQueueStoreSettings } from './settings.ts';

const settings = loadQueueStoreSettings();
const logger = createLogger('queue-store', settings.MX_LOG_LEVEL);
const service = await startQueueStore(settings, logger);
handleShutdown({ logger, stop: () => service.stop() });
