/**
 * Limits on concurrent SMTP sessions, in total and per client address, checked when a client
 * connects. A client over either limit gets `421 4.7.0` and the connection is closed, as
 * Postfix does with smtpd_client_connection_count_limit.
 */
import type { SMTPServerSession } from 'smtp-server';
import { smtpError } from './enhanced-codes.ts';

export class ConnectionLimits {
  private readonly sessions = new Map<string, string>();
  private readonly perClient = new Map<string, number>();

  constructor(
    private readonly hostname: string,
    private readonly maxTotal: number,
    private readonly maxPerClient: number,
  ) {}

  /** Sessions counted now. */
  get size(): number {
    return this.sessions.size;
  }

  /**
   * Counts a new session, or returns the 421 error when it would exceed a limit; a rejected
   * session is not counted.
   */
  admit(session: SMTPServerSession): Error | undefined {
    const client = session.remoteAddress;
    const fromClient = this.perClient.get(client) ?? 0;
    if (this.sessions.size >= this.maxTotal) {
      return smtpError(
        421,
        '4.7.0',
        `${this.hostname} Error: too many connections, try again later`,
      );
    }
    if (fromClient >= this.maxPerClient) {
      return smtpError(421, '4.7.0', `${this.hostname} Error: too many connections from ${client}`);
    }
    this.sessions.set(session.id, client);
    this.perClient.set(client, fromClient + 1);
    return undefined;
  }

  /** Stops counting a closed session; sessions that were never admitted are ignored. */
  release(session: SMTPServerSession): void {
    const client = this.sessions.get(session.id);
    if (client === undefined) {
      return;
    }
    this.sessions.delete(session.id);
    const remaining = (this.perClient.get(client) ?? 1) - 1;
    if (remaining > 0) {
      this.perClient.set(client, remaining);
    } else {
      this.perClient.delete(client);
    }
  }
}
