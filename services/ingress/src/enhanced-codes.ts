/**
 * smtp-server adds an RFC 3463 enhanced status code to every reply, chosen from the reply code
 * alone, so a handler cannot answer `550 5.7.1` (relaying denied): it would come out as
 * `550 5.1.1`. This shim makes a reply whose text already starts with an enhanced code go out
 * as written. It wraps SMTPConnection.prototype.send of smtp-server 3.x.
 */
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

const ENHANCED_CODE_PREFIX = /^[245]\.\d{1,3}\.\d{1,3}(?: |$)/;
let installed = false;

type Send = (code: number, data?: unknown, context?: unknown) => void;

export function installEnhancedCodeShim(): void {
  if (installed) {
    return;
  }
  installed = true;
  const prototype = (SMTPConnection as unknown as { prototype: { send: Send } }).prototype;
  const original = prototype.send;
  prototype.send = function send(this: unknown, code: number, data?: unknown, context?: unknown) {
    if (typeof data === 'string' && ENHANCED_CODE_PREFIX.test(data)) {
      return original.call(this, code, data, false);
    }
    return original.call(this, code, data, context);
  };
}

/** An error for smtp-server handler callbacks: `reply(550, '5.7.1', 'relaying denied')`. */
export function smtpError(
  code: number,
  enhancedCode: string,
  text: string,
): Error & { responseCode: number } {
  const error = new Error(`${enhancedCode} ${text}`) as Error & { responseCode: number };
  error.responseCode = code;
  return error;
}
