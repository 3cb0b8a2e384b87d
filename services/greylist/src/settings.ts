import { formatDuration, type Settings } from '@secondary-mx/config';

export const SETTING_NAMES = [
  'AMQP_URL',
  'REDIS_URL',
  'MX_AMQP_PREFIX',
  'MX_REDIS_PREFIX',
  'MX_GREYLIST_DELAY',
  'MX_GREYLIST_RETRY_WINDOW',
  'MX_GREYLIST_MAX_AGE',
  'MX_GREYLIST_TIMEOUT',
  'MX_GREYLIST_AUTO_WHITELIST',
  'MX_GREYLIST_WHITELIST_CLIENTS',
  'MX_GREYLIST_WHITELIST_NAMES',
  'MX_GREYLIST_WHITELIST_SENDERS',
  'MX_HOSTNAME',
  'MX_GREYLIST_METRICS_LISTEN',
  'DNS_SERVERS',
  'MX_SHUTDOWN_GRACE',
  'MX_LOG_LEVEL',
] as const;

export type GreylistSettings = Settings<(typeof SETTING_NAMES)[number]>;

/**
 * Returns the problem with a combination of settings that each passed their own checks, or
 * undefined when there is none.
 */
export function findSettingsProblem(settings: GreylistSettings): string | undefined {
  const delay = settings.MX_GREYLIST_DELAY;
  const window = settings.MX_GREYLIST_RETRY_WINDOW;
  if (delay >= window) {
    return `MX_GREYLIST_DELAY (${formatDuration(delay)}) must be shorter than MX_GREYLIST_RETRY_WINDOW (${formatDuration(window)}), or no retry could ever pass`;
  }
  return undefined;
}
