/**
 * Ends SMTP sessions that keep failing: after MX_MAX_ERRORS replies of 4xx or 5xx in one
 * session, ingress sends `421 4.7.0 ... too many errors` and closes the connection, as Postfix
 * does at smtpd_hard_error_limit. Greylisted and rejected recipients count like every other
 * error reply, as they do in Postfix.
 */
import type { SMTPServer } from 'smtp-server';
import { type ConnectionInternals, connectionPrototype } from './smtp-connection-patch.ts';

export type ErrorLimitHandler = (sessionId: string, client: string, errors: number) => void;

interface ErrorLimit {
  maxErrors: number;
  onLimit: ErrorLimitHandler;
}

const limits = new WeakMap<SMTPServer, ErrorLimit>();
const errorCounts = new WeakMap<ConnectionInternals, number>();
let installed = false;

/** Makes a server close sessions after maxErrors error replies, reporting each to onLimit. */
export function limitErrors(server: SMTPServer, maxErrors: number, onLimit: ErrorLimitHandler) {
  limits.set(server, { maxErrors, onLimit });
  if (installed) {
    return;
  }
  installed = true;
  const original = connectionPrototype.send;
  connectionPrototype.send = function send(
    this: ConnectionInternals,
    code: number,
    data?: unknown,
    context?: unknown,
  ) {
    original.call(this, code, data, context);
    const limit = limits.get(this._server);
    // A 421 closes the session anyway.
    if (!limit || code < 400 || code === 421 || this._closing || this._closed) {
      return;
    }
    const errors = (errorCounts.get(this) ?? 0) + 1;
    errorCounts.set(this, errors);
    if (errors >= limit.maxErrors) {
      limit.onLimit(this.id, this.remoteAddress, errors);
      original.call(this, 421, `4.7.0 ${this.name} Error: too many errors`, false);
    }
  };
}
