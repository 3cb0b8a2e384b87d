/**
 * Wires the delivery worker: DNS, next-hop selection, SMTP delivery, probes and recipient
 * verification, and the delivery.jobs and recipient.verify consumers on RabbitMQ. main.ts runs
 * it as a process and tests run it in-process.
 */
import { Broker } from '@secondary-mx/amqp';
import { QUEUE, type Result } from '@secondary-mx/contracts';
import { DnsLookup, type DnsLookupOptions } from '@secondary-mx/dns';
import { CLOSE_MARGIN_MS } from '@secondary-mx/lifecycle';
import type { Logger } from '@secondary-mx/logger';
import { type MetricsServer, startMetricsServer } from '@secondary-mx/metrics';
import { CompletedLeases } from './completed-leases.ts';
import { createJobHandler } from './job-handler.ts';
import { createWorkerMetrics } from './metrics.ts';
import { NextHopResolver } from './next-hop.ts';
import { SelfIdentity } from './self-identity.ts';
import type { WorkerSettings } from './settings.ts';
import { SmtpDelivery } from './smtp-delivery.ts';
import { createVerifyHandler } from './verify-handler.ts';

export interface WorkerOptions {
  dns?: Omit<DnsLookupOptions, 'servers'>;
}

export interface DeliveryWorker {
  /**
   * Starts the metrics and health listener when MX_DELIVERY_METRICS_LISTEN is set, connects to
   * RabbitMQ, retrying until it succeeds, consumes delivery and probe jobs and serves
   * recipient.verify. Rejects when the listener cannot bind.
   */
  start(): Promise<void>;
  /**
   * Stops consuming. Each job in flight finishes the message in hand and hands the rest back
   * untried. Messages still in hand after MX_SHUTDOWN_GRACE lose their SMTP connection and are
   * deferred. Then the worker closes RabbitMQ once the results are published, and the listener.
   */
  stop(): Promise<void>;
  /** The metrics and health listener, once start() has opened it. */
  readonly metricsServer: MetricsServer | undefined;
}

const PUBLISH_RETRY_MS = 1000;
/** How long the jobs whose SMTP connections were closed at the end of the grace may take. */
const CUT_OFF_WAIT_MS = 5000;

/** Returns the time limit of stop(): the grace, the wait for deliveries cut off, and closing. */
export function stopTimeoutMs(settings: WorkerSettings): number {
  return settings.MX_SHUTDOWN_GRACE + CUT_OFF_WAIT_MS + CLOSE_MARGIN_MS;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function createDeliveryWorker(
  settings: WorkerSettings,
  logger: Logger,
  options: WorkerOptions = {},
): DeliveryWorker {
  const broker = new Broker({
    url: settings.AMQP_URL,
    prefix: settings.MX_AMQP_PREFIX,
    logger,
    connectionName: `delivery-worker@${settings.MX_HOSTNAME}`,
  });
  const dns = new DnsLookup({ servers: settings.DNS_SERVERS, ...options.dns });
  const self = new SelfIdentity(settings.MX_SELF_NAMES, settings.MX_SMTP_LISTEN);
  const smtp = new SmtpDelivery(
    {
      heloName: settings.MX_HOSTNAME,
      connectTimeoutMs: settings.MX_CONNECT_TIMEOUT,
      socketTimeoutMs: settings.MX_DELIVERY_TIMEOUT,
      messageTimeoutMs: settings.MX_DELIVERY_TIMEOUT,
    },
    logger,
  );
  const metrics = createWorkerMetrics({ rabbitmqConnected: () => broker.connected });
  broker.onError((kind) => metrics.countRabbitmqError(kind));
  let metricsServer: MetricsServer | undefined;
  let closing = false;

  /** Publishes a result, retrying while RabbitMQ is away, until `retryUntil` or the worker closes. */
  const publishResult = async (result: Result, retryUntil: number): Promise<void> => {
    const content = Buffer.from(JSON.stringify(result), 'utf8');
    const ids =
      result.kind === 'delivery' ? { leaseId: result.leaseId } : { probeId: result.probeId };
    for (let attempt = 1; ; attempt++) {
      try {
        await broker.publish(QUEUE.deliveryResults, content, { contentType: 'application/json' });
        return;
      } catch (error) {
        if (closing || Date.now() + PUBLISH_RETRY_MS >= retryUntil) {
          throw error;
        }
        logger.warn(
          { err: error, ...ids, domain: result.domain, attempt },
          `publishing a ${result.kind} result failed, retrying`,
        );
        await sleep(PUBLISH_RETRY_MS);
      }
    }
  };

  const nextHops = new NextHopResolver(dns, self, settings.MX_DELIVERY_PORT);
  const handler = createJobHandler({
    nextHops,
    smtp,
    probe: { heloName: settings.MX_HOSTNAME, connectTimeoutMs: settings.MX_CONNECT_TIMEOUT },
    completed: new CompletedLeases(),
    publishResult,
    logger,
    metrics,
  });

  const verifyHandler = createVerifyHandler({
    nextHops,
    verify: { heloName: settings.MX_HOSTNAME, connectTimeoutMs: settings.MX_CONNECT_TIMEOUT },
    logger,
    metrics,
  });

  return {
    get metricsServer() {
      return metricsServer;
    },
    async start() {
      if (settings.MX_DELIVERY_METRICS_LISTEN !== undefined) {
        metricsServer = await startMetricsServer(
          metrics.registry,
          settings.MX_DELIVERY_METRICS_LISTEN,
          logger,
          { rabbitmq: () => (broker.connected ? 'ok' : 'disconnected') },
        );
      }
      broker.consume(QUEUE.deliveryJobs, (message) => handler(message.content), {
        prefetch: settings.MX_DELIVERY_CONCURRENCY,
      });
      broker.serve(QUEUE.recipientVerify, verifyHandler, {
        prefetch: settings.MX_DELIVERY_CONCURRENCY,
      });
      await broker.start();
      logger.info(
        { queue: broker.name(QUEUE.deliveryJobs), concurrency: settings.MX_DELIVERY_CONCURRENCY },
        'consuming delivery and probe jobs',
      );
    },
    async stop() {
      smtp.drain();
      const graceMs = settings.MX_SHUTDOWN_GRACE;
      if (!(await broker.stopConsuming(graceMs))) {
        logger.warn(
          { graceMs },
          'deliveries still in progress after the shutdown grace, closing their SMTP connections',
        );
        smtp.closeAll();
        await broker.stopConsuming(CUT_OFF_WAIT_MS);
      }
      closing = true;
      await broker.close();
      smtp.closeAll();
      dns.cancel();
      await metricsServer?.close();
    },
  };
}

/** Creates a delivery worker and starts it. */
export async function startWorker(
  settings: WorkerSettings,
  logger: Logger,
  options: WorkerOptions = {},
): Promise<DeliveryWorker> {
  const worker = createDeliveryWorker(settings, logger, options);
  await worker.start();
  return worker;
}
