/**
 * ETRN (RFC 1985): a member's primary, once back, asks us to deliver what we hold for its
 * domain now. smtp-server 3.x has no ETRN, so this adds a command handler to its
 * SMTPConnection prototype (it dispatches `handler_<COMMAND>`) and appends ETRN to the EHLO
 * keywords. Replies follow RFC 1985 section 5: 250 when delivery was started, 458 when it
 * could not be started, 459 when the node is not one we hold mail for, 501 for bad syntax.
 */
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

export type EtrnDecision =
  | { outcome: 'started' }
  | { outcome: 'not-allowed'; reason: string }
  | { outcome: 'unavailable' };

/** Decides an ETRN request for a lower-case A-label domain and starts the flush if allowed. */
export type EtrnHandler = (domain: string, sessionId: string) => Promise<EtrnDecision>;

interface Connection {
  id: string;
  session: { envelope: { mailFrom: unknown } };
  send(code: number, data?: unknown, context?: unknown): void;
  _server: { options: { onEtrn?: EtrnHandler } };
  _etrnAdvertise?: boolean;
}

type Handler = (this: Connection, command: Buffer | string, callback: () => void) => void;

let installed = false;

export function installEtrn(normalizeDomain: (domain: string) => string | undefined): void {
  if (installed) {
    return;
  }
  installed = true;
  const prototype = (SMTPConnection as unknown as { prototype: Record<string, unknown> }).prototype;

  const ehlo = prototype.handler_EHLO as Handler;
  prototype.handler_EHLO = function handleEhlo(this: Connection, command, callback) {
    this._etrnAdvertise = this._server.options.onEtrn !== undefined;
    ehlo.call(this, command, callback);
  } satisfies Handler;

  const send = prototype.send as Connection['send'];
  prototype.send = function sendWithEtrn(
    this: Connection,
    code: number,
    data?: unknown,
    context?: unknown,
  ) {
    if (this._etrnAdvertise && code === 250 && Array.isArray(data)) {
      this._etrnAdvertise = false;
      return send.call(this, code, [...data, 'ETRN'], context);
    }
    return send.call(this, code, data, context);
  };

  prototype.handler_ETRN = function handleEtrn(this: Connection, command, callback) {
    const onEtrn = this._server.options.onEtrn;
    const argument = command.toString().trim().split(/\s+/)[1] ?? '';
    if (!onEtrn) {
      this.send(502, '5.5.1 ETRN is not available');
      return callback();
    }
    if (this.session.envelope.mailFrom) {
      this.send(503, '5.5.1 ETRN is not allowed during a mail transaction');
      return callback();
    }
    if (argument === '') {
      this.send(501, '5.5.4 Syntax: ETRN domain');
      return callback();
    }
    if (argument.startsWith('#')) {
      this.send(
        458,
        `4.7.0 Unable to queue messages for node ${argument}: queue names are not supported`,
      );
      return callback();
    }
    // "@domain" also asks for subdomains; we hold mail by exact member domain only.
    const domain = normalizeDomain(argument.replace(/^@/, ''));
    if (!domain) {
      this.send(501, `5.5.4 ${argument.slice(0, 255)}: invalid domain name`);
      return callback();
    }
    onEtrn(domain, this.id).then(
      (decision) => {
        if (decision.outcome === 'started') {
          this.send(250, `2.0.0 Queuing for node ${domain} started`);
        } else if (decision.outcome === 'not-allowed') {
          this.send(459, `4.7.1 Node ${domain} not allowed: ${decision.reason}`);
        } else {
          this.send(458, `4.3.0 Unable to queue messages for node ${domain}`);
        }
        callback();
      },
      () => {
        this.send(458, `4.3.0 Unable to queue messages for node ${domain}`);
        callback();
      },
    );
  } satisfies Handler;
}
