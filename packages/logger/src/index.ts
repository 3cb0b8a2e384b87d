/**
 * The one logger of every service: pino, JSON lines on stdout. Field names are shared across
 * services: `service`, `session` (SMTP session id), `queueId`, `recipient`, `domain`, `err`.
 */
import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

const REDACTED_PATHS = [
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'password',
  '*.password',
];

export function createLogger(service: string, level = process.env.MX_LOG_LEVEL ?? 'info'): Logger {
  return pino({
    level,
    base: { service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    formatters: {
      level: (label) => ({ level: label }),
    },
  });
}
