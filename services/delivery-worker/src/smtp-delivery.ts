/**
 * Delivers one stored message to its next hops over SMTP. For each hop in order it reuses an
 * idle session or connects to each address in turn. The first session that opens carries one
 * transaction, and every recipient is judged by its reply. When no session opens, every
 * recipient is deferred with a 4.4.1 reply that names each address tried.
 */
import type { DeliveryJob } from '@secondary-mx/contracts';
import type { Logger } from '@secondary-mx/logger';
import type { ConnectionPool } from './connection-pool.ts';
import type { NextHop } from './next-hop.ts';
import { judgeAllLocally, judgeRecipients, type RecipientVerdict } from './recipient-verdicts.ts';
import {
  describeSessionError,
  openSession,
  type SessionOptions,
  type SmtpSession,
} from './smtp-session.ts';
import { prepareEnvelope, sendMessage, type TransactionResult } from './smtp-transaction.ts';

export interface SmtpDeliveryOptions {
  heloName: string;
  connectTimeoutMs: number;
  /** Maximum wait for one reply in milliseconds; the deadline of each delivery also applies. */
  socketTimeoutMs: number;
}

/** Results after which the session is in a known state and may carry the next message. */
const REUSABLE_RESULTS = new Set<TransactionResult['kind']>([
  'completed',
  'mailRejected',
  'noRecipients',
  'local',
]);

export class SmtpDelivery {
  constructor(
    private readonly pool: ConnectionPool,
    private readonly options: SmtpDeliveryOptions,
    private readonly logger: Logger,
  ) {}

  /** Delivers the message and returns one verdict per recipient; gives up at `deadline` (epoch ms). */
  async deliver(
    job: DeliveryJob,
    payload: Buffer,
    hops: readonly NextHop[],
    deadline: number,
  ): Promise<RecipientVerdict[]> {
    const attempts: string[] = [];
    for (const hop of hops) {
      const session =
        (await this.reuseIdle(hop, deadline)) ?? (await this.connect(hop, deadline, attempts));
      if (session) {
        return this.transact(session, job, payload, deadline);
      }
    }
    const tried = attempts.length > 0 ? attempts.join('; ') : 'no address to try';
    return judgeAllLocally(
      job.recipients,
      'connectFailed',
      `no connection to the next hops of ${job.domain}: ${tried}`,
    );
  }

  /** Takes an idle session to the hop and sends RSET on it; a session that fails RSET is dropped. */
  private async reuseIdle(hop: NextHop, deadline: number): Promise<SmtpSession | undefined> {
    let session = this.pool.take(hop.host, hop.port);
    while (session) {
      try {
        await session.reset(Math.max(1, deadline - Date.now()));
        return session;
      } catch (error) {
        // Routine when the server closed the idle session meanwhile: connect afresh.
        this.logger.debug(
          { err: error, relay: session.relay },
          'idle SMTP session unusable, dropped',
        );
        this.pool.release(session, false);
      }
      session = this.pool.take(hop.host, hop.port);
    }
    return undefined;
  }

  /** Connect stage: tries each address of the hop in order until one session opens. */
  private async connect(
    hop: NextHop,
    deadline: number,
    attempts: string[],
  ): Promise<SmtpSession | undefined> {
    for (const address of hop.addresses) {
      const remaining = deadline - Date.now();
      const relay = `${hop.host}[${address}]:${hop.port}`;
      if (remaining <= 0) {
        attempts.push(`${relay}: delivery timed out before connecting`);
        return undefined;
      }
      const options: SessionOptions = {
        heloName: this.options.heloName,
        connectTimeoutMs: Math.min(this.options.connectTimeoutMs, remaining),
        socketTimeoutMs: this.options.socketTimeoutMs,
      };
      try {
        const session = await openSession({ host: hop.host, address, port: hop.port }, options);
        this.pool.hold(session);
        return session;
      } catch (error) {
        attempts.push(`${relay}: ${describeSessionError(error)}`);
      }
    }
    return undefined;
  }

  /** Runs the envelope and data stages on a held session, classifies, then hands the session back. */
  private async transact(
    session: SmtpSession,
    job: DeliveryJob,
    payload: Buffer,
    deadline: number,
  ): Promise<RecipientVerdict[]> {
    let result: TransactionResult;
    try {
      const prepared = prepareEnvelope(job, payload, session);
      result =
        'kind' in prepared
          ? prepared
          : await sendMessage(session, prepared, payload, Math.max(1, deadline - Date.now()));
    } catch (error) {
      this.pool.release(session, false);
      throw error;
    }
    this.pool.release(session, REUSABLE_RESULTS.has(result.kind));
    return judgeRecipients(result, job.recipients, {
      host: session.target.host,
      relay: session.relay,
    });
  }
}
