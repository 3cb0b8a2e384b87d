/**
 * Delivers the messages of one job over one SMTP connection to the domain's next hops. The
 * connection goes to the first address of the hops that accepts one and carries one transaction
 * per message, in job order. It is closed with QUIT before deliverJob resolves, so a job has at
 * most one connection open at a time and none once its result can be published.
 *
 * A connection lost in the middle of a job is replaced once, by trying the hops again in order.
 * When that fails, or the second connection is lost too, the recipients of the messages left
 * are deferred. A message starts only while the lease has a full message time left and the
 * worker is not stopping. Otherwise its recipients and those of the later messages go back to
 * queue-store untried.
 */
import type { JobMessage } from '@secondary-mx/contracts';
import type { Logger } from '@secondary-mx/logger';
import type { NextHop } from './next-hop.ts';
import { judgeAllLocally, judgeRecipients, type RecipientVerdict } from './recipient-verdicts.ts';
import type { LocalFailure } from './reply-classification.ts';
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
  /** Maximum wait for one reply in milliseconds. */
  socketTimeoutMs: number;
  /**
   * Maximum time for one message in milliseconds, from the start of its turn to the reply after
   * DATA. The first message's turn includes DNS and connect, a later one's RSET or a reconnect.
   */
  messageTimeoutMs: number;
}

/** One message of a job with its bytes, cut from the frame payload. */
export interface MessagePart {
  message: JobMessage;
  payload: Buffer;
}

export interface MessageOutcome {
  message: JobMessage;
  verdicts: RecipientVerdict[];
  /** Milliseconds from the start of the message's turn to its verdicts. */
  durationMs: number;
}

export interface JobDelivery {
  /** One entry per message, in job order. */
  outcomes: MessageOutcome[];
  /** Each session opened for the job as `host[address]:port`, in order. */
  relays: string[];
}

export interface JobContext {
  leaseId: string;
  domain: string;
  /** Epoch milliseconds when the job started; the first message's turn starts then. */
  startedAt: number;
  /**
   * Epoch milliseconds when the lease ends. A message starts only when its full time fits
   * before it, and none runs after it.
   */
  leaseUntil: number;
}

/** Connections a job may open after its first one was lost. */
const MAX_RECONNECTS = 1;

/** The reply text of recipients handed back because the worker is stopping. */
export const STOPPING_TEXT = 'not attempted: the delivery worker is stopping';

type SessionChoice = { session: SmtpSession } | { failure: LocalFailure; text: string };

/**
 * Returns whether the session is ready for MAIL FROM without RSET: after a 2xx reply to the
 * final dot the server has ended the transaction. Any other ending may leave an open envelope.
 */
function endedCleanly(result: TransactionResult): boolean {
  return result.kind === 'completed' && result.reply.startsWith('2');
}

/** Shared state of one job's delivery. */
interface JobRun {
  context: JobContext;
  parts: readonly MessagePart[];
  hops: readonly NextHop[];
  outcomes: MessageOutcome[];
  relays: string[];
  session: SmtpSession | undefined;
  reconnects: number;
  needsReset: boolean;
}

export class SmtpDelivery {
  /** Sessions open now, so stop() can close them. */
  private readonly sessions = new Set<SmtpSession>();
  private stopped = false;
  private draining = false;

  constructor(
    private readonly options: SmtpDeliveryOptions,
    private readonly logger: Logger,
  ) {}

  /** Returns the deadline (epoch ms) of a message turn that starts at `start`. */
  deadlineFrom(start: number, leaseUntil: number): number {
    return Math.min(start + this.options.messageTimeoutMs, leaseUntil);
  }

  /**
   * Returns whether a message turn that starts at `start` can run its full time before the
   * lease ends. A message cut by the lease end may already be accepted by the primary and would
   * be sent again under the next lease, so a message that does not fit is not started.
   * NOTE: a message that takes its full time still ends at the lease end, so its result can
   * reach queue-store after the lease was taken back. Duplicates stay possible in that case.
   */
  fitsInLease(start: number, leaseUntil: number): boolean {
    return leaseUntil - start >= this.options.messageTimeoutMs;
  }

  /**
   * Delivers the messages in order over one connection and returns one outcome per message.
   * Resolves only after the connection is closed.
   */
  async deliverJob(
    context: JobContext,
    parts: readonly MessagePart[],
    hops: readonly NextHop[],
  ): Promise<JobDelivery> {
    const run: JobRun = {
      context,
      parts,
      hops,
      outcomes: [],
      relays: [],
      session: undefined,
      reconnects: 0,
      needsReset: false,
    };
    try {
      for (let index = 0; index < parts.length; index++) {
        const start = index === 0 ? context.startedAt : Date.now();
        const settled = await this.deliverNext(run, index, start);
        if (!settled) {
          break;
        }
      }
    } finally {
      await run.session?.quit();
    }
    return { outcomes: run.outcomes, relays: run.relays };
  }

  /** True once drain() was called: no message starts from then on. */
  get isDraining(): boolean {
    return this.draining;
  }

  /**
   * Lets each job finish the message in hand and hands its later messages back untried, so
   * that a stopping worker keeps no recipient leased longer than that message takes.
   */
  drain(): void {
    this.draining = true;
  }

  /** Closes every open session at once and opens no new ones, so deliveries in flight defer. */
  closeAll(): void {
    this.stopped = true;
    for (const session of this.sessions) {
      session.close();
    }
  }

  /**
   * Delivers the message at `index`. Returns false when the recipients of it and of every later
   * message were deferred instead, because the lease has too little time left, ran out, or no
   * connection is left.
   */
  private async deliverNext(run: JobRun, index: number, start: number): Promise<boolean> {
    const part = run.parts[index] as MessagePart;
    const { leaseUntil } = run.context;
    if (this.draining) {
      this.deferRest(run, index, start, 'notAttempted', STOPPING_TEXT);
      return false;
    }
    if (!this.fitsInLease(start, leaseUntil)) {
      const left = Math.max(0, leaseUntil - start);
      this.deferRest(
        run,
        index,
        start,
        'notAttempted',
        `not attempted: the lease has ${left} ms left, less than the ${this.options.messageTimeoutMs} ms a message may take`,
      );
      return false;
    }
    const deadline = this.deadlineFrom(start, leaseUntil);
    const choice = await this.sessionFor(run, deadline);
    if ('failure' in choice) {
      this.deferRest(run, index, start, choice.failure, choice.text);
      return false;
    }
    if (Date.now() >= leaseUntil) {
      this.deferRest(run, index, start, 'leaseExpired', 'lease ran out before delivery');
      return false;
    }
    const verdicts = await this.transact(run, choice.session, part, deadline);
    run.outcomes.push({ message: part.message, verdicts, durationMs: Date.now() - start });
    return true;
  }

  /** Gives the recipients of the message at `index` and of all later ones the same deferral. */
  private deferRest(
    run: JobRun,
    index: number,
    start: number,
    failure: LocalFailure,
    text: string,
  ): void {
    const durationMs = Date.now() - start;
    for (const part of run.parts.slice(index)) {
      const verdicts = judgeAllLocally([part.message], failure, text);
      run.outcomes.push({ message: part.message, verdicts, durationMs });
    }
  }

  /**
   * Returns a session ready for the next transaction: the current one, after RSET when the last
   * transaction needs it, or a new one when there is none yet or the current one was lost.
   */
  private async sessionFor(run: JobRun, deadline: number): Promise<SessionChoice> {
    const current = run.session;
    if (current && !current.closed && run.needsReset) {
      await this.reset(run, current, deadline);
    }
    if (current && !current.closed) {
      return { session: current };
    }
    return this.reconnect(run, current, deadline);
  }

  /** Sends RSET. A session that fails it is closed, so the caller reconnects. */
  private async reset(run: JobRun, session: SmtpSession, deadline: number): Promise<void> {
    const timeoutMs = Math.max(1, Math.min(this.options.socketTimeoutMs, deadline - Date.now()));
    try {
      await session.reset(timeoutMs);
      run.needsReset = false;
    } catch (error) {
      this.logger.warn(
        { err: error, leaseId: run.context.leaseId, relay: session.relay },
        'RSET failed, the SMTP connection is dropped',
      );
      session.close();
    }
  }

  /**
   * Opens the job's first session, or replaces the lost one `current` while the job has a
   * reconnect left.
   */
  private async reconnect(
    run: JobRun,
    current: SmtpSession | undefined,
    deadline: number,
  ): Promise<SessionChoice> {
    if (current && run.reconnects >= MAX_RECONNECTS) {
      return {
        failure: 'connectionLost',
        text: `connection to ${current.relay} was lost again, and a job reconnects only once`,
      };
    }
    if (current) {
      run.reconnects += 1;
      this.logger.warn(
        { leaseId: run.context.leaseId, domain: run.context.domain, relay: current.relay },
        'SMTP connection lost during a job, reconnecting for the messages left',
      );
    }
    const attempts: string[] = [];
    const session = await this.open(run.hops, deadline, attempts);
    if (!session) {
      const tried = attempts.length > 0 ? attempts.join('; ') : 'no address to try';
      const after = current ? ` after the connection to ${current.relay} was lost` : '';
      return {
        failure: 'connectFailed',
        text: `no connection to the next hops of ${run.context.domain}${after}: ${tried}`,
      };
    }
    run.session = session;
    run.needsReset = false;
    run.relays.push(session.relay);
    return { session };
  }

  /** Connect stage: tries each address of each hop in order until one session opens. */
  private async open(
    hops: readonly NextHop[],
    deadline: number,
    attempts: string[],
  ): Promise<SmtpSession | undefined> {
    for (const hop of hops) {
      for (const address of hop.addresses) {
        const relay = `${hop.host}[${address}]:${hop.port}`;
        if (this.stopped) {
          attempts.push(`${relay}: the delivery worker is stopping`);
          return undefined;
        }
        const remaining = deadline - Date.now();
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
          this.track(session);
          return session;
        } catch (error) {
          attempts.push(`${relay}: ${describeSessionError(error)}`);
        }
      }
    }
    return undefined;
  }

  private track(session: SmtpSession): void {
    this.sessions.add(session);
    session.onEnd(() => this.sessions.delete(session));
    if (this.stopped) {
      session.close();
    }
  }

  /** Runs the envelope and data stages of one message on the session and judges its recipients. */
  private async transact(
    run: JobRun,
    session: SmtpSession,
    part: MessagePart,
    deadline: number,
  ): Promise<RecipientVerdict[]> {
    const context = {
      host: session.target.host,
      relay: session.relay,
      dsn: session.parameters.supports('DSN'),
    };
    let result: TransactionResult;
    try {
      const prepared = prepareEnvelope(part.message, part.payload, session);
      result =
        'kind' in prepared
          ? prepared
          : await sendMessage(session, prepared, part.payload, Math.max(1, deadline - Date.now()));
    } catch (error) {
      // The session's state is unknown after an error of our own, so it is not used again.
      this.logger.error(
        { err: error, leaseId: run.context.leaseId, queueId: part.message.queueId },
        'delivery failed unexpectedly, deferring the message',
      );
      session.close();
      return judgeAllLocally(
        [part.message],
        'internalError',
        'delivery failed in the delivery worker, will retry',
      );
    }
    run.needsReset = !endedCleanly(result);
    if (result.kind === 'lost') {
      // A timed-out or broken session may still be open, but its replies can no longer be matched.
      session.close();
    }
    return judgeRecipients(result, part.message, context);
  }
}
