import type { Settings } from '@secondary-mx/config';

/** Settings that the routes use, passed to buildApp. */
export const ROUTE_SETTINGS = [
  'MX_HOSTNAME',
  'MX_SELF_NAMES',
  'MX_MEMBER_NUMBER_PATTERN',
  'DNS_SERVERS',
  'MX_DNS_TIMEOUT',
  'MX_SMTP_CHECK_TIMEOUT',
  'MX_DELIVERY_PORT',
] as const;

export type RouteSettings = Settings<(typeof ROUTE_SETTINGS)[number]>;

/** Every setting admin-api reads at start. */
export const ADMIN_API_SETTINGS = [
  'DATABASE_URL',
  'AMQP_URL',
  'MX_AMQP_PREFIX',
  'MX_ADMIN_LISTEN',
  'MX_ADMIN_TOKEN',
  'MX_SHUTDOWN_GRACE',
  'MX_LOG_LEVEL',
  ...ROUTE_SETTINGS,
] as const;
