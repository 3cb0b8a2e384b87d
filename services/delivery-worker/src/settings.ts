import type { Settings } from '@secondary-mx/config';

export const SETTING_NAMES = [
  'AMQP_URL',
  'MX_AMQP_PREFIX',
  'MX_HOSTNAME',
  'MX_SELF_NAMES',
  'MX_SMTP_LISTEN',
  'MX_DELIVERY_PORT',
  'MX_DELIVERY_CONCURRENCY',
  'MX_DELIVERY_TIMEOUT',
  // Read only to check that it is larger than MX_DELIVERY_TIMEOUT; each job carries its lease.
  'MX_LEASE_TIME',
  'MX_CONNECT_TIMEOUT',
  'MX_DELIVERY_METRICS_LISTEN',
  'DNS_SERVERS',
  'MX_SHUTDOWN_GRACE',
  'MX_LOG_LEVEL',
] as const;

export type WorkerSettings = Settings<(typeof SETTING_NAMES)[number]>;
