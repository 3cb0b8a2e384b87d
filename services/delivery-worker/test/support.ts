/** Helpers shared by the delivery-worker tests. */
import type { Logger } from '@secondary-mx/logger';

export interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

/** Returns a logger that keeps every line in `lines`, with the call shapes the services use. */
export function recordingLogger(lines: LogLine[], bindings: Record<string, unknown> = {}): Logger {
  const write =
    (level: string) =>
    (fields: unknown, message?: string): void => {
      if (typeof fields === 'string') {
        lines.push({ level, ...bindings, msg: fields });
        return;
      }
      lines.push({
        level,
        ...bindings,
        ...(fields as Record<string, unknown>),
        msg: message ?? '',
      });
    };
  const logger = {
    level: 'trace',
    trace: write('trace'),
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    fatal: write('fatal'),
    child: (extra: Record<string, unknown>) => recordingLogger(lines, { ...bindings, ...extra }),
  };
  return logger as unknown as Logger;
}

/** Polls until the condition holds; rejects with the message after timeoutMs. */
export async function waitFor(
  condition: () => boolean,
  message: string,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${message}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
