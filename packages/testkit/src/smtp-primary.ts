/**
 * A fake primary MX for tests: a real SMTP server (smtp-server) on 127.0.0.1 that records every
 * message it accepts and replies to MAIL, RCPT and DATA as the test chooses. It can be stopped
 * and started again on the same port, to play a primary that is down and comes back.
 */
import type { Socket } from 'node:net';
import { SMTPServer, type SMTPServerAddress, type SMTPServerSession } from 'smtp-server';
import { freePort } from './environment.ts';

/**
 * A reply to send instead of the default one; the text goes out exactly as given. smtp-server
 * sends its own text for a 2xx reply to MAIL or RCPT, so only the code matters there.
 */
export interface PrimaryReply {
  code: number;
  /** Text after the code, with an enhanced status code if the test wants one: `5.1.1 No such user`. */
  message: string;
}

/** Drops the connection without a reply, to play a primary that goes away mid-transaction. */
export const DISCONNECT = 'disconnect' as const;

/** What a reply hook returns: a reply, DISCONNECT, or undefined for the default reply. */
export type ReplyChoice = PrimaryReply | typeof DISCONNECT | undefined;

/** ESMTP parameters of a MAIL or RCPT command, keys in upper case; a flag such as SMTPUTF8 is `true`. */
export type SmtpParameters = Record<string, string | true>;

export interface ReceivedRecipient {
  address: string;
  parameters: SmtpParameters;
}

export interface ReceivedMessage {
  /** smtp-server's id of the SMTP session the message came in; equal ids mean one connection. */
  sessionId: string;
  /** The name the client gave with EHLO or HELO. */
  heloName: string;
  /** The reverse-path; an empty string for the null sender `<>`. */
  mailFrom: string;
  mailParameters: SmtpParameters;
  /** The recipients accepted with 250, in order. */
  rcptTo: string[];
  recipients: ReceivedRecipient[];
  /** The message as received after DATA, with dot-stuffing removed. */
  raw: Buffer;
  remoteAddress: string;
  remotePort: number;
}

export interface FakePrimaryOptions {
  /** Defaults to a free port on 127.0.0.1. */
  port?: number;
  /** Advertises SIZE with this limit in bytes; unset advertises no SIZE. */
  size?: number;
  /** Advertises DSN (RFC 3461), so the client sends NOTIFY, ORCPT, RET and ENVID. */
  dsn?: boolean;
  /** Hides SMTPUTF8 from the EHLO reply. */
  hideSmtpUtf8?: boolean;
  /** Hides 8BITMIME from the EHLO reply. */
  hide8BitMime?: boolean;
  /** Milliseconds smtp-server waits on an idle client before closing; smtp-server's default is 60 s. */
  socketTimeoutMs?: number;
}

type AddressHook = (
  address: string,
  session: SMTPServerSession,
) => ReplyChoice | Promise<ReplyChoice>;
type DataHook = (message: ReceivedMessage) => ReplyChoice | Promise<ReplyChoice>;

function toParameters(args: SMTPServerAddress['args']): SmtpParameters {
  const parameters: SmtpParameters = {};
  if (args) {
    for (const [key, value] of Object.entries(args)) {
      parameters[key.toUpperCase()] = value === true ? true : String(value);
    }
  }
  return parameters;
}

function replyError(reply: PrimaryReply): Error & { responseCode: number } {
  return Object.assign(new Error(reply.message), { responseCode: reply.code });
}

export class FakePrimary {
  readonly host = '127.0.0.1';
  /** Messages accepted with 2xx after the final dot, in order. */
  readonly messages: ReceivedMessage[] = [];
  /** Messages that onData answered with a 4xx or 5xx reply, in order. */
  readonly rejectedMessages: ReceivedMessage[] = [];
  /** SMTP sessions (TCP connections) open now, the most open at once, and all since creation. */
  currentSessions = 0;
  maxSessions = 0;
  totalSessions = 0;
  /** Chooses the reply to MAIL FROM, given the reverse-path; the default accepts every sender. */
  onMail: AddressHook = () => undefined;
  /** Chooses the reply to each RCPT; the default accepts every recipient. */
  onRcpt: AddressHook = () => undefined;
  /** Chooses the reply after the final dot; the default accepts the message. */
  onData: DataHook = () => undefined;

  private server: SMTPServer | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly waiters: { count: number; resolve: () => void }[] = [];

  private constructor(
    readonly port: number,
    private readonly options: FakePrimaryOptions,
  ) {}

  /** Creates a fake primary on a port that was free, without listening yet. */
  static async create(options: FakePrimaryOptions = {}): Promise<FakePrimary> {
    return new FakePrimary(options.port ?? (await freePort()), options);
  }

  /** The address as `127.0.0.1:<port>`, the form of a primaryHosts entry. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  get listening(): boolean {
    return this.server !== undefined;
  }

  /** Starts listening on the port; a stopped primary can start again. */
  async start(): Promise<void> {
    if (this.server) {
      return;
    }
    const server = this.createServer();
    server.server.on('connection', (socket: Socket) => this.track(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, this.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // Client errors (resets, timeouts) are routine for a test server and must not crash the run.
    server.on('error', () => undefined);
    this.server = server;
  }

  /** Stops listening and drops every open session at once, like a primary that goes down. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) {
      return;
    }
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.sockets) {
      socket.destroy();
    }
    await closed;
  }

  /** Resolves once at least `count` messages were accepted; rejects after timeoutMs. */
  waitForMessages(count: number, timeoutMs = 10_000): Promise<void> {
    if (this.messages.length >= count) {
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(
            `fake primary received ${this.messages.length} of ${count} messages within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      this.waiters.push({
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  private createServer(): SMTPServer {
    return new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      disableReverseLookup: true,
      logger: false,
      size: this.options.size,
      hideDSN: !this.options.dsn,
      hideSMTPUTF8: this.options.hideSmtpUtf8 ?? false,
      hide8BITMIME: this.options.hide8BitMime ?? false,
      socketTimeout: this.options.socketTimeoutMs,
      closeTimeout: 100,
      onMailFrom: (address, session, callback) => {
        void this.replyTo(this.onMail(address.address, session), session, (reply) => {
          callback(reply === undefined ? undefined : replyError(reply));
        });
      },
      onRcptTo: (address, session, callback) => {
        void this.replyTo(this.onRcpt(address.address, session), session, (reply) => {
          callback(reply === undefined ? undefined : replyError(reply));
        });
      },
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          const message = this.toMessage(session, Buffer.concat(chunks));
          void this.replyTo(this.onData(message), session, (reply, success) => {
            this.record(message, reply === undefined);
            callback(reply === undefined ? null : replyError(reply), success?.message);
          });
        });
      },
    });
  }

  /** Counts TCP sessions: each connection is one SMTP session. */
  private track(socket: Socket): void {
    this.sockets.add(socket);
    this.currentSessions += 1;
    this.totalSessions += 1;
    this.maxSessions = Math.max(this.maxSessions, this.currentSessions);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.currentSessions -= 1;
    });
  }

  /**
   * Waits for a hook's choice, then drops the session or calls `send` with the failure reply
   * to send (undefined for success) and, for a 2xx choice, the reply itself.
   */
  private async replyTo(
    choice: ReplyChoice | Promise<ReplyChoice>,
    session: SMTPServerSession,
    send: (failure: PrimaryReply | undefined, success?: PrimaryReply) => void,
  ): Promise<void> {
    const reply = await choice;
    if (reply === DISCONNECT) {
      this.dropSession(session);
    } else if (reply === undefined || (reply.code >= 200 && reply.code < 300)) {
      send(undefined, reply);
    } else {
      send(reply);
    }
  }

  private dropSession(session: SMTPServerSession): void {
    for (const socket of this.sockets) {
      if (
        socket.remotePort === session.remotePort &&
        socket.remoteAddress === session.remoteAddress
      ) {
        socket.destroy();
      }
    }
  }

  private toMessage(session: SMTPServerSession, raw: Buffer): ReceivedMessage {
    const { mailFrom, rcptTo } = session.envelope;
    return {
      sessionId: session.id,
      heloName: session.hostNameAppearsAs,
      mailFrom: mailFrom ? mailFrom.address : '',
      mailParameters: mailFrom ? toParameters(mailFrom.args) : {},
      rcptTo: rcptTo.map((recipient) => recipient.address),
      recipients: rcptTo.map((recipient) => ({
        address: recipient.address,
        parameters: toParameters(recipient.args),
      })),
      raw,
      remoteAddress: session.remoteAddress,
      remotePort: session.remotePort,
    };
  }

  private record(message: ReceivedMessage, accepted: boolean): void {
    if (!accepted) {
      this.rejectedMessages.push(message);
      return;
    }
    this.messages.push(message);
    for (const waiter of this.waiters.filter((entry) => this.messages.length >= entry.count)) {
      this.waiters.splice(this.waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  }
}

/** Creates a fake primary and starts it. */
export async function startFakePrimary(options: FakePrimaryOptions = {}): Promise<FakePrimary> {
  const primary = await FakePrimary.create(options);
  await primary.start();
  return primary;
}
