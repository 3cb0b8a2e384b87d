import { loadSettingsOrExit } from '@secondary-mx/config';
import { CLOSE_MARGIN_MS, handleShutdown } from '@secondary-mx/lifecycle';
import { createLogger } from '@secondary-mx/logger';
import { createGreylistService } from './service.ts';
import { findSettingsProblem, SETTING_NAMES } from './settings.ts';

const settings = loadSettingsOrExit('greylist', SETTING_NAMES);
const problem = findSettingsProblem(settings);
if (problem !== undefined) {
  process.stderr.write(`greylist: invalid settings:\n  ${problem}\n`);
  process.exit(78);
}

const logger = createLogger('greylist', settings.MX_LOG_LEVEL);
const service = createGreylistService(settings, logger);
handleShutdown({
  logger,
  stop: () => service.stop(),
  timeoutMs: settings.MX_SHUTDOWN_GRACE + CLOSE_MARGIN_MS,
});
await service.start();
