import { loadSettingsOrExit, type Settings } from '@secondary-mx/config';

export const INGRESS_SETTINGS = [
  'AMQP_URL',
  'MX_AMQP_PREFIX',
  'MX_HOSTNAME',
  'MX_SMTP_LISTEN',
  'MX_TLS_CERT_FILE',
  'MX_TLS_KEY_FILE',
  'MX_TLS_RELOAD_INTERVAL',
  'MX_MAX_MESSAGE_SIZE',
  'MX_MAX_RECIPIENTS',
  'MX_MAX_CONNECTIONS',
  'MX_MAX_CONNECTIONS_PER_CLIENT',
  'MX_SMTP_TIMEOUT',
  'MX_MAX_ERRORS',
  'MX_PREGREET_WAIT',
  'MX_PREGREET_TTL',
  'MX_MAX_HOPS',
  'MX_SENDER_DOMAIN_CHECK',
  'MX_DNSBL_ZONES',
  'MX_DNS_TIMEOUT',
  'MX_SPOOL_TIMEOUT',
  'MX_GREYLIST_TIMEOUT',
  'REDIS_URL',
  'MX_REDIS_PREFIX',
  'MX_VERIFY_TIMEOUT',
  'MX_VERIFY_POSITIVE_TTL',
  'MX_VERIFY_NEGATIVE_TTL',
  'MX_GREYLIST_ON_ERROR',
  'MX_INGRESS_METRICS_LISTEN',
  'MX_DOMAIN_REFRESH',
  'DNS_SERVERS',
  'MX_SHUTDOWN_GRACE',
  'MX_LOG_LEVEL',
] as const;

export type IngressSettings = Settings<(typeof INGRESS_SETTINGS)[number]>;

export function loadIngressSettings(): IngressSettings {
  return loadSettingsOrExit('ingress', INGRESS_SETTINGS);
}
