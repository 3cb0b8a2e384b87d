import { loadSettingsOrExit, type Settings } from '@secondary-mx/config';

export const QUEUE_STORE_SETTINGS = [
  'DATABASE_URL',
  'AMQP_URL',
  'MX_AMQP_PREFIX',
  'MX_QUEUE_LIFETIME',
  'MX_RETRY_MIN',
  'MX_RETRY_MAX',
  'MX_LEASE_TIME',
  'MX_SCHEDULER_INTERVAL',
  'MX_SCHEDULER_BATCH',
  'MX_LOG_LEVEL',
] as const;

export type QueueStoreSettings = Settings<(typeof QUEUE_STORE_SETTINGS)[number]>;

export function loadQueueStoreSettings(): QueueStoreSettings {
  return loadSettingsOrExit('queue-store', QUEUE_STORE_SETTINGS);
}
