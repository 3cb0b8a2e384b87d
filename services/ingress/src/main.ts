import { CLOSE_MARGIN_MS, handleShutdown } from '@secondary-mx/lifecycle';
import { createLogger } from '@secondary-mx/logger';
import { replyWaitMs, startIngress } from './service.ts';
import { loadIngressSettings } from './settings.ts';

const settings = loadIngressSettings();
const logger = createLogger('ingress', settings.MX_LOG_LEVEL);
let service: Awaited<ReturnType<typeof startIngress>> | undefined;
handleShutdown({
  logger,
  stop: async () => {
    await service?.stop();
  },
  timeoutMs: settings.MX_SHUTDOWN_GRACE + replyWaitMs(settings) + CLOSE_MARGIN_MS,
});
service = await startIngress(settings, logger);
