/**
 * The pregreet test: ingress delays its greeting by MX_PREGREET_WAIT, and a client that sends
 * a command before the greeting gets `554 5.5.1` and the connection is closed, as
 * Postfix's postscreen_greet_action = drop does. Spam software often talks first to save time;
 * RFC 5321 section 4.3.1 has the client wait for the greeting.
 *
 * smtp-server 3.x already rejects such a command with `421 You talk too soon`, during its own
 * 100 ms pause and while onConnect runs, so the wait is added in onConnect and the patch only
 * changes the reply and reports the client. The patch also drops smtp-server's fixed 100 ms
 * pause, because the wait in onConnect does its job, and clients that passed the test before
 * (pregreet-passes.ts) would otherwise still lose 100 ms per connection.
 * NOTE: only complete command lines count; bytes without a line ending before the greeting
 * are not noticed.
 */
import type { SMTPServer } from 'smtp-server';
import { type ConnectionInternals, connectionPrototype } from './smtp-connection-patch.ts';

export type EarlyTalkerHandler = (sessionId: string, client: string) => void;

const handlers = new WeakMap<SMTPServer, EarlyTalkerHandler>();
let installed = false;

/** Makes a server reject early talkers with 554 5.5.1 and report each one to the handler. */
export function rejectEarlyTalkers(server: SMTPServer, onEarlyTalker: EarlyTalkerHandler): void {
  handlers.set(server, onEarlyTalker);
  if (installed) {
    return;
  }
  installed = true;
  const originalInit = connectionPrototype.init;
  connectionPrototype.init = function init(this: ConnectionInternals) {
    if (!handlers.has(this._server)) {
      originalInit.call(this);
      return;
    }
    // smtp-server 3.21's init() without its 100 ms timer. The connection limits are checked
    // in onConnect (connection-limits.ts), so its maxClients option is not used.
    this._setListeners(() => this.connectionReady());
  };
  const original = connectionPrototype._onCommand;
  connectionPrototype._onCommand = function onCommand(
    this: ConnectionInternals,
    command: Buffer,
    callback?: () => void,
  ) {
    const handler = handlers.get(this._server);
    if (!handler || this._ready || this._upgrading || this._closing || this._closed) {
      original.call(this, command, callback);
      return;
    }
    handler(this.id, this.remoteAddress);
    this.send(554, '5.5.1 Error: protocol violation, command sent before the greeting', false);
    this.close();
  };
}
