/**
 * Connect and close handlers of ingress: the connection limits, the wait before the greeting
 * that the pregreet test needs, and the start of the DNSBL lookup.
 */
import type { SMTPServerSession } from 'smtp-server';
import type { ConnectionLimits } from './connection-limits.ts';
import type { HandlerContext } from './smtp-handlers.ts';

type Callback = (error?: Error | null) => void;

export function onConnect(context: HandlerContext, limits: ConnectionLimits) {
  return (session: SMTPServerSession, callback: Callback): void => {
    context.metrics.countSession();
    const log = context.logger.child({ session: session.id, client: session.remoteAddress });
    const refusal = limits.admit(session);
    if (refusal) {
      log.warn({ connections: limits.size, reply: 421 }, `connection refused: ${refusal.message}`);
      callback(refusal);
      return;
    }
    log.info({ name: session.clientHostname }, 'connect');
    if (context.dnsbl.enabled) {
      // Started now so that RCPT rarely waits for it; its failures are logged where it runs.
      void context.dnsbl.listing(session.id, session.remoteAddress);
    }
    const wait = context.settings.MX_PREGREET_WAIT;
    if (wait === 0 || context.pregreet.has(session.remoteAddress)) {
      callback();
      return;
    }
    setTimeout(() => {
      context.pregreet.finishWait(session.id, session.remoteAddress);
      callback();
    }, wait);
  };
}

export function onClose(context: HandlerContext, limits: ConnectionLimits) {
  return (session: SMTPServerSession): void => {
    limits.release(session);
    context.dnsbl.forget(session.id);
    context.logger.info({ session: session.id, client: session.remoteAddress }, 'disconnect');
  };
}
