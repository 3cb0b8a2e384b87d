/**
 * Counts every SMTP reply that smtp-server sends, by code, for the replies metric. It wraps
 * SMTPConnection.send, so it counts the greeting, the command replies and the replies sent
 * just before a close.
 *
 * Install it before limitErrors, whose 421 after the last error calls the send it wrapped.
 * Wrapped first, this counter is that inner send and so counts the 421 as well.
 */
import type { SMTPServer } from 'smtp-server';
import { type ConnectionInternals, connectionPrototype } from './smtp-connection-patch.ts';

export type ReplyHandler = (code: number) => void;

const handlers = new WeakMap<SMTPServer, ReplyHandler>();
let installed = false;

/** Makes a server report the code of each reply it sends to the handler. */
export function countReplies(server: SMTPServer, onReply: ReplyHandler): void {
  handlers.set(server, onReply);
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
    handlers.get(this._server)?.(code);
  };
}
