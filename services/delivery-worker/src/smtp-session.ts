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
    // 'error' on an idle session would crash the process.
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

  /** Sends RSET, so a reused session starts its next transaction clean (RFC 5321 section 4.1.1.5). */
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

function createConnection(
  target: SessionTarget,
  options: SessionOptions,
  useTls: boolean,
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
    logger: false,
  });
}

function connect(
  target: SessionTarget,
  options: SessionOptions,
  useTls: boolean,
): Promise<SmtpSession> {
  const connection = createConnection(target, options, useTls);
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

/** Describes why a session could not be opened, for the reply text. */
export function describeSessionError(error: unknown): string {
  const smtpError = error as Partial<SmtpError>;
  if (typeof smtpError.response === 'string' && smtpError.response !== '') {
    return `server replied ${smtpError.response.replace(/\r?\n/g, ' ')}`;
  }
  return (error as Error).message ?? String(error);
}
