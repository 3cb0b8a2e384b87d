import { loadSettingsOrExit, type Settings } from '@secondary-mx/config';

export const INGRESS_SETTINGS = [
  'AMQP_URL',
  'MX_AMQP_PREFIX',
  'MX_HOSTNAME',
  'MX_SMTP_LISTEN',
  'MX_TLS_CERT_FILE',
  'MX_TLS_KEY_FILE',
  'MX_MAX_MESSAGE_SIZE',
  'MX_MAX_RECIPIENTS',
  'MX_SPOOL_TIMEOUT',
  'MX_GREYLIST_TIMEOUT',
  'MX_GREYLIST_ON_ERROR',
  'MX_INGRESS_METRICS_LISTEN',
  'MX_DOMAIN_REFRESH',
  'DNS_SERVERS',
  'MX_LOG_LEVEL',
] as const;

export type IngressSettings = Settings<(typeof INGRESS_SETTINGS)[number]>;

export function loadIngressSettings(): IngressSettings {
  return loadSettingsOrExit('ingress', INGRESS_SETTINGS);
}
