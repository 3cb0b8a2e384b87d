import { loadSettingsOrExit, type Settings } from '@secondary-mx/config';

export const QUEUE_STORE_SETTINGS = [
  'DATABASE_URL',
  'AMQP_URL',
  'MX_AMQP_PREFIX',
  'MX_HOSTNAME',
  'MX_QUEUE_LIFETIME',
  'MX_BOUNCE_LIFETIME',
  'MX_BOUNCE_SIZE_LIMIT',
  'MX_DELAY_WARNINGS',
  'MX_RETENTION',
  'MX_DESTINATION_CONCURRENCY',
  'MX_MESSAGES_PER_CONNECTION',
  'MX_PROBE_INTERVAL_MIN',
  'MX_PROBE_INTERVAL_MAX',
  'MX_RETRY_MIN',
  'MX_RETRY_MAX',
  'MX_LEASE_TIME',
  // Read only to check that MX_LEASE_TIME is larger, because leases are granted here.
  'MX_DELIVERY_TIMEOUT',
  'MX_SCHEDULER_INTERVAL',
  'MX_SCHEDULER_BATCH',
  'MX_QUEUE_STORE_METRICS_LISTEN',
  'MX_SHUTDOWN_GRACE',
  'MX_LOG_LEVEL',
] as const;

export type QueueStoreSettings = Settings<(typeof QUEUE_STORE_SETTINGS)[number]>;

export function loadQueueStoreSettings(): QueueStoreSettings {
  return loadSettingsOrExit('queue-store', QUEUE_STORE_SETTINGS);
}
