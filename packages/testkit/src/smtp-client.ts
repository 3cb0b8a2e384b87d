/**
 * A raw SMTP client for tests that check replies line by line: it sends exactly what it is
 * given, so tests can send what a well-behaved client library never would.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';

export interface SmtpReply {
  code: number;
  /** Every line of the reply joined with '\n', codes included. */
  text: string;
}

export class SmtpClient {
  private buffer = '';
  private readonly waiting: ((reply: SmtpReply) => void)[] = [];
  private readonly replies: SmtpReply[] = [];

  private constructor(private socket: Socket) {
    this.listen(socket);
  }

  private listen(socket: Socket): void {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', () => undefined);
  }

  /**
   * Connects and resolves with the client and the greeting. `localAddress` sets the source
   * address, such as another loopback address (127.0.0.2) to act as a different client.
   */
  static async connect(
    port: number,
    host = '127.0.0.1',
    localAddress?: string,
  ): Promise<{ client: SmtpClient; greeting: SmtpReply }> {
    const socket = connect({ port, host, ...(localAddress ? { localAddress } : {}) });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new SmtpClient(socket);
    return { client, greeting: await client.read() };
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    const lines: string[] = [];
    for (;;) {
      const end = this.buffer.indexOf('\r\n');
      if (end < 0) {
        break;
      }
      const line = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      lines.push(line);
      if (/^\d{3} /.test(line) || /^\d{3}$/.test(line)) {
        const reply = { code: Number(line.slice(0, 3)), text: lines.splice(0).join('\n') };
        const waiter = this.waiting.shift();
        if (waiter) {
          waiter(reply);
        } else {
          this.replies.push(reply);
        }
      }
    }
    if (lines.length > 0) {
      this.buffer = `${lines.join('\r\n')}\r\n${this.buffer}`;
    }
  }

  /** Resolves with the next reply, or rejects after timeoutMs. */
  read(timeoutMs = 15_000): Promise<SmtpReply> {
    const queued = this.replies.shift();
    if (queued) {
      return Promise.resolve(queued);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no SMTP reply within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiting.push((reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
    });
  }

  /** Sends one command line (CRLF is added) and resolves with its reply. */
  async command(line: string): Promise<SmtpReply> {
    this.socket.write(`${line}\r\n`, 'latin1');
    return this.read();
  }

  /** Sends raw bytes as they are, for DATA content; read() gets the reply. */
  write(bytes: Buffer | string): void {
    this.socket.write(bytes);
  }

  /**
   * Sends STARTTLS and, after its 220 reply, runs the TLS handshake without verifying the
   * certificate, as sending MTAs do. Resolves with the TLS socket; later commands go over it.
   */
  async startTls(servername?: string): Promise<TLSSocket> {
    const reply = await this.command('STARTTLS');
    if (reply.code !== 220) {
      throw new Error(`STARTTLS failed: ${reply.text}`);
    }
    this.socket.removeAllListeners('data');
    const secure = tlsConnect({
      socket: this.socket,
      rejectUnauthorized: false,
      ...(servername ? { servername } : {}),
    });
    await once(secure, 'secureConnect');
    this.socket = secure;
    this.listen(secure);
    return secure;
  }

  /** Resolves once the server has closed the connection. */
  async closed(): Promise<void> {
    if (!this.socket.destroyed && this.socket.readyState !== 'closed') {
      await once(this.socket, 'close');
    }
  }

  close(): void {
    this.socket.end();
  }
}
