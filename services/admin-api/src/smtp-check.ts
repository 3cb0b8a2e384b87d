/**
 * A minimal SMTP check of one server address: connect, read the greeting, send EHLO, read the
 * reply and send QUIT, all within one time limit. It sends no mail.
 */
import { connect, type Socket } from 'node:net';

export type SmtpCheckStatus = 'answers' | 'no answer' | 'rejects';

export interface SmtpCheckResult {
  /**
   * `answers`: a 2xx greeting and a 2xx EHLO reply. `rejects`: the server replied with another
   * code. `no answer`: no connection, or no complete reply before the time limit.
   */
  status: SmtpCheckStatus;
  /** The first line of the greeting when the session succeeded, else what went wrong. */
  reply: string;
  /** The host name the greeting names, when it names one. */
  greetingName?: string;
}

/** Most bytes read for one reply, so a server that never ends its reply cannot fill memory. */
const MAX_REPLY_BYTES = 64 * 1024;

interface Reply {
  code: number;
  lines: string[];
}

/** Reads SMTP replies from a socket, one at a time. */
class ReplyReader {
  private buffer = '';
  private lines: string[] = [];
  private waiting: ((reply: Reply | Error) => void) | undefined;
  private failure: Error | undefined;

  constructor(socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      if (this.buffer.length > MAX_REPLY_BYTES) {
        this.fail(new Error(`reply longer than ${MAX_REPLY_BYTES} bytes`));
        return;
      }
      this.drain();
    });
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(new Error('connection closed without a complete reply')));
  }

  next(): Promise<Reply> {
    return new Promise((resolve, reject) => {
      if (this.failure) {
        reject(this.failure);
        return;
      }
      this.waiting = (reply) => (reply instanceof Error ? reject(reply) : resolve(reply));
      this.drain();
    });
  }

  private drain(): void {
    for (;;) {
      const end = this.buffer.indexOf('\n');
      if (end < 0 || !this.waiting) {
        return;
      }
      const line = this.buffer.slice(0, end).replace(/\r$/, '');
      this.buffer = this.buffer.slice(end + 1);
      const match = /^(\d{3})([ -]?)(.*)$/.exec(line);
      if (!match) {
        this.fail(new Error(`invalid reply line ${JSON.stringify(line.slice(0, 100))}`));
        return;
      }
      this.lines.push(line);
      if (match[2] !== '-') {
        const reply = { code: Number(match[1]), lines: this.lines };
        this.lines = [];
        const waiting = this.waiting;
        this.waiting = undefined;
        waiting(reply);
      }
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.(this.failure);
  }
}

/** Returns the host name that a greeting line such as `220 mail.example ESMTP` names. */
function greetingNameOf(line: string): string | undefined {
  const name = line.slice(4).trim().split(/\s+/)[0];
  return name ? name.toLowerCase().replace(/\.$/, '') : undefined;
}

/** Checks one server address. A failed connection or a broken reply becomes `no answer`. */
export async function checkSmtp(
  address: string,
  port: number,
  heloName: string,
  timeoutMs: number,
): Promise<SmtpCheckResult> {
  const socket = connect({ host: address, port });
  const reader = new ReplyReader(socket);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms waiting for a complete reply`)),
      timeoutMs,
    );
  });
  let stage = 'greeting';
  try {
    const greeting = await Promise.race([reader.next(), timedOut]);
    const greetingLine = greeting.lines[0] ?? '';
    if (greeting.code < 200 || greeting.code > 299) {
      return { status: 'rejects', reply: `greeting: ${greetingLine}` };
    }
    stage = 'EHLO reply';
    socket.write(`EHLO ${heloName}\r\n`);
    const ehlo = await Promise.race([reader.next(), timedOut]);
    if (ehlo.code < 200 || ehlo.code > 299) {
      return { status: 'rejects', reply: `EHLO: ${ehlo.lines[0] ?? ''}` };
    }
    socket.write('QUIT\r\n');
    const greetingName = greetingNameOf(greetingLine);
    return {
      status: 'answers',
      reply: greetingLine,
      ...(greetingName ? { greetingName } : {}),
    };
  } catch (error) {
    return { status: 'no answer', reply: `no ${stage}: ${(error as Error).message}` };
  } finally {
    clearTimeout(timer);
    // Sends the pending QUIT, if any, and then closes without waiting for its reply.
    socket.destroySoon();
  }
}
