/**
 * EXPN: smtp-server 3.x does not know the command and replies `500 5.5.2 command not
 * recognized`. EXPN is not among the commands RFC 5321 section 4.5.1 requires, and a server
 * without it replies 502, command not implemented (section 4.2.4). A backup MX has no
 * mailing lists, so there is nothing to expand.
 */
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

interface Connection {
  send(code: number, data?: unknown, context?: unknown): void;
}

let installed = false;

export function installExpn(): void {
  if (installed) {
    return;
  }
  installed = true;
  const prototype = (SMTPConnection as unknown as { prototype: Record<string, unknown> }).prototype;
  prototype.handler_EXPN = function handleExpn(
    this: Connection,
    _command: unknown,
    callback: () => void,
  ) {
    this.send(502, '5.5.1 EXPN is not implemented', 'EXPN');
    callback();
  };
}
