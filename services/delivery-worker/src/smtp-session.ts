/**
 * One SMTP client session to a next hop: the connect stage (TCP, greeting, EHLO and STARTTLS,
 * which nodemailer runs together in connect()) and the session's state afterwards.
 */
import { isIP } from 'node:net';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { CommandParameters } from './command-parameters.ts';

export interface SessionTarget {
  /** Host name of the next hop, or its IP literal. */
  host: string;
  address: string;
  port: number;
}

export interface SessionOptions {
  /** Our name in EHLO. */
  heloName: string;
  /** Limit for TCP connect, greeting, EHLO and STARTTLS together, in milliseconds. */
  connectTimeoutMs: number;
  /** Maximum wait for any one reply, in milliseconds. */
  socketTimeoutMs: number;
}

type SmtpError = SMTPConnection.SMTPError;

/** One line of an SMTP dialogue: a command we sent or a reply the server gave. */
export interface TranscriptLine {
  from: 'client' | 'server';
  text: string;
}

/** How long QUIT may take before the socket is closed anyway. */
const QUIT_TIMEOUT_MS = 1000;

export class SmtpSession {
  /** Transactions started on this session. */
  transactions = 0;
  private ended = false;

  constructor(
    readonly target: SessionTarget,
    readonly connection: SMTPConnection,
    readonly parameters: CommandParameters,
  ) {
    // nodemailer reports a broken session with 'error' and then 'end'; without a listener an
    // 'error' between two transactions would crash the process.
    connection.on('error', () => undefined);
    connection.once('end', () => {
      this.ended = true;
    });
  }

  /** The next hop as `host[address]:port`, the form of log lines. */
  get relay(): string {
    return `${this.target.host}[${this.target.address}]:${this.target.port}`;
  }

  get closed(): boolean {
    return this.ended || this.connection.destroyed;
  }

  /** Calls the listener once when the session ends, or at once if it has ended. */
  onEnd(listener: () => void): () => void {
    if (this.closed) {
      listener();
      return () => undefined;
    }
    this.connection.once('end', listener);
    return () => this.connection.off('end', listener);
  }

  /**
   * Sends RSET, so the next transaction starts clean (RFC 5321 section 4.1.1.5). The session is
   * closed when RSET fails or times out.
   */
  reset(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        stopWatching();
        this.close();
        reject(new Error(`RSET to ${this.relay} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      const stopWatching = this.onEnd(() => {
        clearTimeout(timer);
        reject(new Error(`connection to ${this.relay} closed before the reply to RSET`));
      });
      this.connection.reset((error) => {
        clearTimeout(timer);
        stopWatching();
        if (error) {
          this.close();
          reject(error);
        } else {
          resolve();
        }
      });
    });
  }

  /**
   * Sends one command and resolves with the server's reply (lines joined by `\n`), whatever its
   * code. Rejects when the session ends or `timeoutMs` passes first, closing it in the second
   * case. For commands nodemailer has no method for, such as a MAIL and RCPT without DATA.
   *
   * NOTE: this uses nodemailer's internal `_sendCommand` and `_responseActions`, the way its own
   * reset() does in nodemailer 10.6.1. It throws if they are gone after an upgrade.
   */
  command(text: string, timeoutMs: number): Promise<string> {
    const internals = this.connection as unknown as {
      _sendCommand?: (command: string) => void;
      _responseActions?: ((reply: string) => void)[];
    };
    const { _sendCommand: send, _responseActions: actions } = internals;
    if (typeof send !== 'function' || !Array.isArray(actions)) {
      throw new Error('nodemailer SMTPConnection no longer has _sendCommand or _responseActions');
    }
    const verb = text.split(' ')[0] ?? text;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        stopWatching();
        this.close();
        reject(new Error(`${verb} to ${this.relay} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      const stopWatching = this.onEnd(() => {
        clearTimeout(timer);
        reject(new Error(`connection to ${this.relay} closed before the reply to ${verb}`));
      });
      actions.push((reply) => {
        clearTimeout(timer);
        stopWatching();
        resolve(reply);
      });
      send.call(this.connection, text);
    });
  }

  close(): void {
    this.connection.close();
  }

  /** Sends QUIT and resolves when the session has ended, closing it after a short wait. */
  quit(): Promise<void> {
    if (this.closed) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.close(), QUIT_TIMEOUT_MS);
      this.onEnd(() => {
        clearTimeout(timer);
        resolve();
      });
      this.connection.quit();
    });
  }
}

/**
 * Returns a logger for nodemailer's `transactionLog` option that appends each command and
 * reply, which nodemailer logs at debug level with `tnx` set to `client` or `server`.
 */
function transcriptLogger(transcript: TranscriptLine[]): SMTPConnection.Options['logger'] {
  const ignore = () => undefined;
  return {
    level: ignore,
    trace: ignore,
    debug: (entry: { tnx?: unknown }, text: unknown) => {
      if ((entry?.tnx === 'client' || entry?.tnx === 'server') && typeof text === 'string') {
        transcript.push({ from: entry.tnx, text });
      }
    },
    info: ignore,
    warn: ignore,
    error: ignore,
    fatal: ignore,
  };
}

function createConnection(
  target: SessionTarget,
  options: SessionOptions,
  useTls: boolean,
  transcript: TranscriptLine[] | undefined,
): SMTPConnection {
  return new SMTPConnection({
    host: target.address,
    port: target.port,
    servername: isIP(target.host) === 0 ? target.host : undefined,
    name: options.heloName,
    connectionTimeout: options.connectTimeoutMs,
    greetingTimeout: options.connectTimeoutMs,
    socketTimeout: options.socketTimeoutMs,
    // Opportunistic STARTTLS without certificate checks, like Postfix's `may` security level:
    // MX hosts rarely have certificates for their MX names, and a failed check must not stop
    // mail that would otherwise go in plaintext.
    opportunisticTLS: true,
    ignoreTLS: !useTls,
    tls: { rejectUnauthorized: false },
    logger: transcript ? transcriptLogger(transcript) : false,
    transactionLog: transcript !== undefined,
  });
}

function connect(
  target: SessionTarget,
  options: SessionOptions,
  useTls: boolean,
  transcript?: TranscriptLine[],
): Promise<SmtpSession> {
  const connection = createConnection(target, options, useTls, transcript);
  const parameters = new CommandParameters(connection);
  return new Promise((resolve, reject) => {
    const onError = (error: SmtpError) => {
      connection.off('end', onEnd);
      reject(error);
    };
    const onEnd = () => {
      connection.off('error', onError);
      reject(new Error('connection closed before the EHLO reply'));
    };
    connection.once('error', onError);
    connection.once('end', onEnd);
    connection.connect((error) => {
      connection.off('error', onError);
      connection.off('end', onEnd);
      if (error) {
        reject(error);
        return;
      }
      resolve(new SmtpSession(target, connection, parameters));
    });
  });
}

/**
 * Opens a session: TCP connect, greeting, EHLO, then STARTTLS when offered. A session whose TLS
 * handshake fails is opened again without TLS, as Postfix's `may` level does.
 */
export async function openSession(
  target: SessionTarget,
  options: SessionOptions,
): Promise<SmtpSession> {
  try {
    return await connect(target, options, true);
  } catch (error) {
    if ((error as SmtpError).code !== 'ETLS') {
      throw error;
    }
    return connect(target, options, false);
  }
}

/**
 * Opens a plaintext session for a probe: TCP connect, greeting and EHLO, without STARTTLS. The
 * commands and replies are appended to `transcript`, also when the session fails to open.
 */
export function openProbeSession(
  target: SessionTarget,
  options: SessionOptions,
  transcript: TranscriptLine[],
): Promise<SmtpSession> {
  return connect(target, options, false, transcript);
}

/** Describes why a session could not be opened, for the reply text. */
export function describeSessionError(error: unknown): string {
  const smtpError = error as Partial<SmtpError>;
  if (typeof smtpError.response === 'string' && smtpError.response !== '') {
    return `server replied ${smtpError.response.replace(/\r?\n/g, ' ')}`;
  }
  return (error as Error).message ?? String(error);
}
