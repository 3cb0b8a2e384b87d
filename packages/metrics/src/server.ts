/**
 * Serves a prom-client registry over HTTP for Prometheus: `GET /metrics` returns the text
 * exposition, anything else 404. Each service keeps its own registry, so several services in
 * one process (as in tests) never mix their metrics.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ListenAddress } from '@secondary-mx/config';
import type { Logger } from '@secondary-mx/logger';
import type { Registry } from 'prom-client';

export interface MetricsServer {
  /** The address and port the server listens on. */
  address: ListenAddress;
  /** Stops accepting scrapes and closes open connections. */
  close(): Promise<void>;
}

/** Listens on the address and resolves once listening. Rejects when it cannot bind. */
export async function startMetricsServer(
  registry: Registry,
  listen: ListenAddress,
  logger: Logger,
): Promise<MetricsServer> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (path !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    registry.metrics().then(
      (text) => {
        response.writeHead(200, { 'content-type': registry.contentType });
        response.end(request.method === 'HEAD' ? undefined : text);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'rendering metrics failed');
        response.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed\n');
      },
    );
  });
  await listenOn(server, listen);
  const bound = server.address() as AddressInfo;
  const address = { host: bound.address, port: bound.port };
  logger.info(address, 'metrics listening');

  return {
    address,
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function listenOn(server: Server, { host, port }: ListenAddress): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
