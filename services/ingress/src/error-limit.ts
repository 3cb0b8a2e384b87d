/**
 * Ends SMTP sessions that keep failing: after MX_MAX_ERRORS replies of 4xx or 5xx in one
 * session, ingress sends `421 4.7.0 ... too many errors` and closes the connection, as Postfix
 * does at smtpd_hard_error_limit. Two replies are not client errors and do not count: a
 * greylist deferral (`451 4.7.1`) is policy, and `452 4.5.3` for a recipient past
 * MX_MAX_RECIPIENTS asks the client to send the rest in another transaction. Counting them
 * closed sessions that had recipients accepted, so the sender had to retry them all.
 * Past RECIPIENT_OVERSHOOT_LIMIT such replies in one session they count after all, as
 * Postfix's smtpd_recipient_overshoot_limit does, so a client cannot send RCPT after RCPT
 * without end.
 */
import type { SMTPServer } from 'smtp-server';
import { type ConnectionInternals, connectionPrototype } from './smtp-connection-patch.ts';

export type ErrorLimitHandler = (sessionId: string, client: string, errors: number) => void;

interface ErrorLimit {
  maxErrors: number;
  onLimit: ErrorLimitHandler;
}

/** Reply codes with the enhanced codes that the error limit does not count. */
const UNCOUNTED_REPLIES: readonly { code: number; enhancedCode: string }[] = [
  { code: 451, enhancedCode: '4.7.1' },
  { code: 452, enhancedCode: '4.5.3' },
];

/** Uncounted replies in one session after which they count as errors (Postfix's default). */
const RECIPIENT_OVERSHOOT_LIMIT = 1000;

/** Tells whether the reply is an error reply that the error limit leaves out. */
function isUncounted(code: number, data: unknown): boolean {
  const text = typeof data === 'string' ? data : '';
  return UNCOUNTED_REPLIES.some(
    (reply) => reply.code === code && text.startsWith(`${reply.enhancedCode} `),
  );
}

const limits = new WeakMap<SMTPServer, ErrorLimit>();
const errorCounts = new WeakMap<ConnectionInternals, number>();
const overshootCounts = new WeakMap<ConnectionInternals, number>();

/** Tells whether the reply counts toward the session's error limit, and counts overshoot. */
function countsAsError(connection: ConnectionInternals, code: number, data: unknown): boolean {
  if (code < 400) {
    return false;
  }
  if (!isUncounted(code, data)) {
    return true;
  }
  const overshoot = (overshootCounts.get(connection) ?? 0) + 1;
  overshootCounts.set(connection, overshoot);
  return overshoot > RECIPIENT_OVERSHOOT_LIMIT;
}
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
    if (!limit || code === 421 || this._closing || this._closed) {
      return;
    }
    if (!countsAsError(this, code, data)) {
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
