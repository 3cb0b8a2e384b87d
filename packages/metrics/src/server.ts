/**
 * Serves a prom-client registry and the service's health over HTTP: `GET /metrics` returns the
 * Prometheus text exposition, `GET /health` returns 200 or 503 with a JSON report, and anything
 * else 404. Each service keeps its own registry, so several services in one process (as in
 * tests) never mix their metrics.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ListenAddress } from '@secondary-mx/config';
import type { Logger } from '@secondary-mx/logger';
import type { Registry } from 'prom-client';
import { type HealthChecks, type HealthReport, runHealthChecks } from './health.ts';

export interface MetricsServer {
  /** The address and port the server listens on; the bound port when port 0 was asked for. */
  address: ListenAddress;
  /** Stops accepting scrapes and closes open connections. */
  close(): Promise<void>;
}

/**
 * Listens on the address and resolves once listening. Rejects when it cannot bind. Without
 * health checks, `/health` returns 200 as long as the process serves HTTP.
 */
export async function startMetricsServer(
  registry: Registry,
  listen: ListenAddress,
  logger: Logger,
  health: HealthChecks = {},
): Promise<MetricsServer> {
  let lastStatus: HealthReport['status'] = 'ok';

  const sendHealth = async (response: ServerResponse, head: boolean) => {
    const report = await runHealthChecks(health);
    // Logged on change only, so a long outage does not write one line per probe.
    if (report.status !== lastStatus) {
      if (report.status === 'ok') {
        logger.info({ checks: report.checks }, 'health changed to ok');
      } else {
        logger.warn({ checks: report.checks }, 'health changed to unavailable');
      }
      lastStatus = report.status;
    }
    response.writeHead(report.status === 'ok' ? 200 : 503, {
      'content-type': 'application/json',
      'cache-control': 'no-store',
    });
    response.end(head ? undefined : `${JSON.stringify(report)}\n`);
  };

  const sendMetrics = async (response: ServerResponse, head: boolean) => {
    try {
      const text = await registry.metrics();
      response.writeHead(200, { 'content-type': registry.contentType });
      response.end(head ? undefined : text);
    } catch (error) {
      logger.error({ err: error }, 'rendering metrics failed');
      response.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed\n');
    }
  };

  const server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    const method = request.method ?? '';
    if (method !== 'GET' && method !== 'HEAD') {
      response.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' });
      response.end('method not allowed\n');
      return;
    }
    if (path === '/metrics') {
      void sendMetrics(response, method === 'HEAD');
    } else if (path === '/health') {
      void sendHealth(response, method === 'HEAD');
    } else {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
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
