/**
 * A TCP proxy on 127.0.0.1 and a free port for tests that need a server to stop replying
 * without closing its connections. pause() stops reading what clients send, so the target sees
 * nothing more and clients wait for replies. resume() passes the held bytes on in order, so no
 * protocol stream is cut. cut() instead acts as if the target went down: every connection is
 * closed, and new ones are closed at once until restore().
 */
import { connect, createServer, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Stops passing client bytes to the target. */
  pause(): void;
  /** Passes client bytes on again, the held ones first. */
  resume(): void;
  /** Closes every proxied connection, and each new one at once until restore(). */
  cut(): void;
  /** Proxies new connections to the target again. */
  restore(): void;
  /** Closes the listener and every proxied connection. */
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const clients = new Set<Socket>();
  let paused = false;
  let isCut = false;
  const server = createServer((client) => {
    if (isCut) {
      client.destroy();
      return;
    }
    const upstream = connect({ host: targetHost, port: targetPort });
    clients.add(client);
    client.pipe(upstream);
    upstream.pipe(client);
    // After pipe(), which starts the flow, so a connection made while paused holds its bytes.
    if (paused) {
      client.pause();
    }
    const closeBoth = () => {
      clients.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', closeBoth);
    upstream.on('error', closeBoth);
    client.on('close', closeBoth);
    upstream.on('close', closeBoth);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;

  return {
    port,
    pause() {
      paused = true;
      for (const client of clients) {
        client.pause();
      }
    },
    resume() {
      paused = false;
      for (const client of clients) {
        client.resume();
      }
    },
    cut() {
      isCut = true;
      for (const client of clients) {
        client.destroy();
      }
    },
    restore() {
      isCut = false;
    },
    close() {
      for (const client of clients) {
        client.destroy();
      }
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
