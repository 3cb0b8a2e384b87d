import { loadSettingsOrExit } from '@secondary-mx/config';
import { handleShutdown } from '@secondary-mx/lifecycle';
import { createLogger } from '@secondary-mx/logger';
import { SETTING_NAMES } from './settings.ts';
import { createDeliveryWorker, stopTimeoutMs } from './worker.ts';

const settings = loadSettingsOrExit('delivery-worker', SETTING_NAMES);
const logger = createLogger('delivery-worker', settings.MX_LOG_LEVEL);
const worker = createDeliveryWorker(settings, logger);
handleShutdown({ logger, stop: () => worker.stop(), timeoutMs: stopTimeoutMs(settings) });
await worker.start();
