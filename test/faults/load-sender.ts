/**
 * A load of SMTP messages from parallel sessions that behaves like a sending MTA. Each session
 * keeps its connection for message after message. A message that gets a 4xx reply, a dropped
 * connection or no reply is sent again after a short wait, a few times. Every message carries
 * a unique token in `X-Fault-Token:` and its Message-ID, so the primary can count it.
 */
import { connect, type Socket } from 'node:net';

export interface LoadOptions {
  port: number;
  /** Prefix of every token, unique per scenario. */
  scenario: string;
  messages: number;
  sessions: number;
  sender: string;
  /** Recipients are spread over these addresses, one per message. */
  recipients: string[];
  /** Tries of one message before the sender gives up on it. */
  maxAttempts?: number;
  /** Maximum wait for one reply in milliseconds. */
  replyTimeoutMs?: number;
  /**
   * Milliseconds after the start when no more tries begin, so a system that stopped taking
   * mail ends the load instead of hanging it. Messages not accepted by then count as not
   * accepted.
   */
  durationLimitMs?: number;
}

export interface SentMessage {
  token: string;
  /** Whether a 250 reply after DATA came back. */
  accepted: boolean;
  attempts: number;
  /** The last reply, or what went wrong instead of one. */
  lastOutcome: string;
}

interface Reply {
  code: number;
  text: string;
}

const BODY_LINE = 'The quick brown fox jumps over the lazy dog, again and again and again.';
/** Waits between tries: short first, then at most MAX_RETRY_WAIT_MS. */
const FIRST_RETRY_WAIT_MS = 250;
const MAX_RETRY_WAIT_MS = 4000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Returns the DATA bytes of one message, dot-stuffed and ended with CRLF `.` CRLF. */
export function composeMessage(token: string, sender: string, recipient: string): Buffer {
  const lines = [
    `From: <${sender}>`,
    `To: <${recipient}>`,
    `Subject: fault load ${token}`,
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: <${token}@faults.example>`,
    `X-Fault-Token: ${token}`,
    '',
    ...Array.from({ length: 14 }, () => BODY_LINE),
    '.leading dot, which the client must double',
  ];
  const stuffed = lines.map((line) => (line.startsWith('.') ? `.${line}` : line));
  return Buffer.from(`${stuffed.join('\r\n')}\r\n.\r\n`, 'latin1');
}

/** Reads the token that composeMessage put into a message, or undefined. */
export function readToken(raw: Buffer): string | undefined {
  const head = raw.subarray(0, 4096).toString('latin1');
  const match = /^X-Fault-Token: (\S+)\r?$/m.exec(head);
  return match?.[1];
}

/** One SMTP connection with a reply reader; any socket error ends it. */
class Connection {
  private buffer = '';
  private lines: string[] = [];
  private waiter: { resolve: (reply: Reply) => void; reject: (error: Error) => void } | undefined;
  private readonly replies: Reply[] = [];
  private failure: Error | undefined;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  static open(port: number, timeoutMs: number): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1' });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error('connect timed out'));
      }, timeoutMs);
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new Connection(socket));
      });
    });
  }

  get usable(): boolean {
    return this.failure === undefined;
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    for (;;) {
      const end = this.buffer.indexOf('\r\n');
      if (end < 0) {
        return;
      }
      const line = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      this.lines.push(line);
      if (line.length === 3 || line[3] === ' ') {
        const reply = { code: Number(line.slice(0, 3)), text: this.lines.join('\n') };
        this.lines = [];
        const waiter = this.waiter;
        this.waiter = undefined;
        if (waiter) {
          waiter.resolve(reply);
        } else {
          this.replies.push(reply);
        }
      }
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(this.failure);
    this.socket.destroy();
  }

  read(timeoutMs: number): Promise<Reply> {
    const queued = this.replies.shift();
    if (queued) {
      return Promise.resolve(queued);
    }
    if (this.failure) {
      return Promise.reject(this.failure);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new Error('reply timed out')), timeoutMs);
      this.waiter = {
        resolve: (reply) => {
          clearTimeout(timer);
          resolve(reply);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
    });
  }

  send(bytes: string | Buffer, timeoutMs: number): Promise<Reply> {
    if (this.failure) {
      return Promise.reject(this.failure);
    }
    this.socket.write(bytes);
    return this.read(timeoutMs);
  }

  quit(): void {
    if (this.usable) {
      this.socket.end('QUIT\r\n');
    }
  }

  destroy(): void {
    this.fail(new Error('connection dropped by the client'));
  }
}

export class LoadSender {
  readonly messages: SentMessage[];
  accepted = 0;
  /** Counts of each outcome other than 250, by reply code or error message. */
  readonly failures = new Map<string, number>();
  private next = 0;
  private readonly progressWaiters: { count: number; resolve: () => void }[] = [];
  private readonly maxAttempts: number;
  private readonly replyTimeoutMs: number;
  private stopAt = Number.POSITIVE_INFINITY;

  constructor(private readonly options: LoadOptions) {
    this.messages = Array.from({ length: options.messages }, (_, index) => ({
      token: `${options.scenario}-${index}`,
      accepted: false,
      attempts: 0,
      lastOutcome: 'not sent',
    }));
    this.maxAttempts = options.maxAttempts ?? 10;
    this.replyTimeoutMs = options.replyTimeoutMs ?? 45_000;
  }

  /** Whether the duration limit ended the load before every message was tried to the end. */
  get cutShort(): boolean {
    return Date.now() >= this.stopAt;
  }

  /** Sends every message; resolves when each was accepted or given up. */
  async run(): Promise<void> {
    this.stopAt = Date.now() + (this.options.durationLimitMs ?? 90_000);
    await Promise.all(Array.from({ length: this.options.sessions }, () => this.session()));
    for (const waiter of this.progressWaiters.splice(0)) {
      waiter.resolve();
    }
  }

  /** Resolves once `count` messages were accepted, or when the load ends. */
  whenAccepted(count: number): Promise<void> {
    if (this.accepted >= count || this.next >= this.messages.length) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.progressWaiters.push({ count, resolve }));
  }

  private async session(): Promise<void> {
    let connection: Connection | undefined;
    for (;;) {
      const index = this.next;
      if (index >= this.messages.length) {
        break;
      }
      this.next += 1;
      const message = this.messages[index] as SentMessage;
      const recipient = this.options.recipients[index % this.options.recipients.length] as string;
      const data = composeMessage(message.token, this.options.sender, recipient);
      while (!message.accepted && message.attempts < this.maxAttempts && !this.cutShort) {
        if (message.attempts > 0) {
          const wait = Math.min(
            MAX_RETRY_WAIT_MS,
            FIRST_RETRY_WAIT_MS * 2 ** (message.attempts - 1),
          );
          await sleep(wait);
        }
        message.attempts += 1;
        try {
          if (!connection?.usable) {
            connection = await this.openSession();
          }
          const outcome = await this.transaction(connection, recipient, data);
          message.lastOutcome = outcome.text;
          if (outcome.code === 250) {
            message.accepted = true;
            this.onAccepted();
          } else {
            this.countFailure(String(outcome.code));
            if (outcome.code === 421) {
              connection.destroy();
            } else if (connection.usable) {
              await connection.send('RSET\r\n', this.replyTimeoutMs);
            }
            if (outcome.code >= 500) {
              break;
            }
          }
        } catch (error) {
          message.lastOutcome = (error as Error).message;
          this.countFailure((error as Error).message);
          connection?.destroy();
          connection = undefined;
        }
      }
    }
    connection?.quit();
  }

  private async openSession(): Promise<Connection> {
    const connection = await Connection.open(this.options.port, 5000);
    const greeting = await connection.read(this.replyTimeoutMs);
    if (greeting.code !== 220) {
      connection.destroy();
      throw new Error(`greeting ${greeting.code}`);
    }
    const ehlo = await connection.send('EHLO load.faults.example\r\n', this.replyTimeoutMs);
    if (ehlo.code !== 250) {
      connection.destroy();
      throw new Error(`EHLO ${ehlo.code}`);
    }
    return connection;
  }

  /** Runs MAIL, RCPT and DATA; returns the first reply that is not the expected one. */
  private async transaction(connection: Connection, recipient: string, data: Buffer) {
    const timeout = this.replyTimeoutMs;
    const mail = await connection.send(`MAIL FROM:<${this.options.sender}>\r\n`, timeout);
    if (mail.code !== 250) {
      return mail;
    }
    const rcpt = await connection.send(`RCPT TO:<${recipient}>\r\n`, timeout);
    if (rcpt.code !== 250) {
      return rcpt;
    }
    const start = await connection.send('DATA\r\n', timeout);
    if (start.code !== 354) {
      return start;
    }
    return connection.send(data, timeout);
  }

  private onAccepted(): void {
    this.accepted += 1;
    for (const waiter of this.progressWaiters.filter((entry) => this.accepted >= entry.count)) {
      this.progressWaiters.splice(this.progressWaiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  }

  private countFailure(key: string): void {
    this.failures.set(key, (this.failures.get(key) ?? 0) + 1);
  }
}
