/**
 * The stop of the SMTP listener. The listening socket closes at once, so new connections are
 * refused, and the sessions in progress go on for the grace time. After it, every session gets
 * `421 4.3.2 Service shutting down` and is closed:
 * - at once when it waits for a command, or while the client is still sending message bytes
 *   (nothing of that message is stored, and the client sends it again later);
 * - after the reply to the command in progress otherwise. A message whose DATA has been
 *   received in full keeps its spool write, so its reply is 250 only after the commit.
 * Replies still outstanding after the reply wait are cut off with the same 421.
 *
 * smtp-server's own close() is not used, because from its first moment it replies 421 to every
 * command, so no session in progress could finish its message.
 */
import type { Logger } from '@secondary-mx/logger';
import type { SMTPServer } from 'smtp-server';
import { type ConnectionInternals, connectionPrototype } from './smtp-connection-patch.ts';

export interface GracefulStopOptions {
  /** How long sessions in progress may go on normally (MX_SHUTDOWN_GRACE). */
  graceMs: number;
  /** How long after the grace a command in progress may take to get its reply. */
  replyWaitMs: number;
  logger: Logger;
}

const SHUTDOWN_REPLY = '4.3.2 Service shutting down';
const POLL_MS = 100;

/** Servers whose grace has ended; their sessions get 421 to any further command. */
const graceOver = new WeakSet<SMTPServer>();
let installed = false;

function installCommandPatch(): void {
  if (installed) {
    return;
  }
  installed = true;
  const original = connectionPrototype._onCommand;
  connectionPrototype._onCommand = function onCommand(
    this: ConnectionInternals,
    command: Buffer,
    callback?: () => void,
  ) {
    if (!graceOver.has(this._server) || this._upgrading || this._closing || this._closed) {
      original.call(this, command, callback);
      return;
    }
    // send() closes the connection after a 421.
    this.send(421, SHUTDOWN_REPLY, false);
  };
}

type Activity = 'idle' | 'receiving' | 'working';

function activityOf(connection: ConnectionInternals): Activity {
  // smtp-server sets _parser to false once the socket is closed.
  const parser = connection._parser || undefined;
  if (connection._dataStream && parser?._dataMode) {
    return 'receiving';
  }
  if (connection._handlerPending || connection._dataStream || connection._upgrading) {
    return 'working';
  }
  return 'idle';
}

function connectionsOf(server: SMTPServer): Set<ConnectionInternals> {
  return (server as unknown as { connections: Set<ConnectionInternals> }).connections;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits until the server has no session left or the deadline (epoch ms) has passed. */
async function waitForSessions(server: SMTPServer, deadline: number): Promise<void> {
  const connections = connectionsOf(server);
  while (connections.size > 0 && Date.now() < deadline) {
    await sleep(Math.min(POLL_MS, Math.max(0, deadline - Date.now())));
  }
}

/**
 * Stops the server as described above and resolves once every session is closed. Closed
 * sessions may still have a socket that waits for the client's side to close; smtp-server
 * destroys those sockets a few seconds later.
 */
export async function stopGracefully(
  server: SMTPServer,
  options: GracefulStopOptions,
): Promise<void> {
  const { graceMs, replyWaitMs, logger } = options;
  installCommandPatch();
  const connections = connectionsOf(server);
  // The callback would only run once every socket is gone; sessions are tracked instead.
  server.server.close();
  logger.info(
    { sessions: connections.size, graceMs },
    'SMTP listener closed, letting sessions in progress finish',
  );
  await waitForSessions(server, Date.now() + graceMs);
  if (connections.size === 0) {
    return;
  }

  graceOver.add(server);
  logger.info({ sessions: connections.size }, 'shutdown grace over, closing the sessions left');
  const replyDeadline = Date.now() + replyWaitMs;
  while (connections.size > 0) {
    const cutOff = Date.now() >= replyDeadline;
    for (const connection of [...connections]) {
      const activity = activityOf(connection);
      if (activity === 'working' && !cutOff) {
        continue;
      }
      logger.info(
        { session: connection.id, client: connection.remoteAddress, activity, reply: 421 },
        'session closed: service shutting down',
      );
      // send() closes the connection after a 421, also when the reply could not be written.
      connection.send(421, SHUTDOWN_REPLY, false);
    }
    if (connections.size > 0) {
      await sleep(POLL_MS);
    }
  }
}
