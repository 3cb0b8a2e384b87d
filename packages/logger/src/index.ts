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

/**
 * Creates the service's logger. Lines are written asynchronously: while one write is in
 * flight, the next lines are collected and written together, which saves a system call per
 * line under load. pino flushes what is left when the process exits.
 */
export function createLogger(service: string, level = process.env.MX_LOG_LEVEL ?? 'info'): Logger {
  const destination = pino.destination({ dest: 1, sync: false });
  return pino(
    {
      level,
      base: { service, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      formatters: {
        level: (label) => ({ level: label }),
      },
    },
    destination,
  );
}
