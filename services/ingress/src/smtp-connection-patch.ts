/**
 * Access to smtp-server's SMTPConnection prototype for the few rules that its options do not
 * cover. Each patch looks up its settings by server, so a server without them behaves as
 * smtp-server 3.x does.
 */
import type { SMTPServer, SMTPServerSession } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

/** The fields of an smtp-server 3.x connection that the patches read. */
export interface ConnectionInternals {
  id: string;
  name: string;
  remoteAddress: string;
  session: SMTPServerSession;
  _server: SMTPServer;
  _ready: boolean;
  _upgrading: boolean;
  _closing: boolean;
  _closed: boolean;
  /** True while a command handler, such as onRcptTo, has not called back yet. */
  _handlerPending: boolean;
  /** The message stream from the DATA command until the reply after it; falsy otherwise. */
  _dataStream: unknown;
  /** The command parser; `_dataMode` is true while message bytes are being received. */
  _parser: { _dataMode: boolean } | false | undefined;
  send(code: number, data?: unknown, context?: unknown): void;
  close(): void;
  _onCommand(command: Buffer, callback?: () => void): void;
  init(): void;
  connectionReady(): void;
  _setListeners(callback: () => void): void;
}

export const connectionPrototype = (SMTPConnection as unknown as { prototype: ConnectionInternals })
  .prototype;
