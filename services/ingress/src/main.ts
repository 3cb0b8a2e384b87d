import { handleShutdown } from '@secondary-mx/lifecycle';
import { createLogger } from '@secondary-mx/logger';
import { startIngress } from './service.ts';
import { loadIngressSettings } from './settings.ts';

const settings = loadIngressSettings();
const logger = createLogger('ingress', settings.MX_LOG_LEVEL);
const service = await startIngress(settings, logger);
handleShutdown({ logger, stop: () => service.stop(), timeoutMs: 30_000 });
