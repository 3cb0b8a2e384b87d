/**
 * ingress: the SMTP listener. Relays for approved member domains only, asks the greylist
 * service about each recipient and hands each message to queue-store.
 */

import { normalizeDomain } from '@secondary-mx/address';
import { Broker } from '@secondary-mx/amqp';
import { EXCHANGE, parseControlEvent } from '@secondary-mx/contracts';
import type { Logger } from '@secondary-mx/logger';
import { type MetricsServer, startMetricsServer } from '@secondary-mx/metrics';
import { SMTPServer } from 'smtp-server';
import { ApprovedDomains } from './approved-domains.ts';
import { installEnhancedCodeShim } from './enhanced-codes.ts';
import { type EtrnHandler, installEtrn } from './etrn.ts';
import { createIngressMetrics } from './metrics.ts';
import { createReverseResolver } from './reverse-resolver.ts';
import type { IngressSettings } from './settings.ts';
import { type HandlerContext, onData, onMailFrom, onRcptTo } from './smtp-handlers.ts';
import { loadTlsCredentials } from './tls-certificate.ts';

/** How long SMTP sessions in progress may go on after a stop signal. */
const CLOSE_TIMEOUT_MS = 20_000;

export async function startIngress(settings: IngressSettings, logger: Logger) {
  installEnhancedCodeShim();
  installEtrn(normalizeDomain);
  const broker = new Broker({
    url: settings.AMQP_URL,
    prefix: settings.MX_AMQP_PREFIX,
    logger,
    connectionName: 'ingress',
  });
  const domains = new ApprovedDomains(broker, logger, settings.MX_DOMAIN_REFRESH);
  broker.subscribe(EXCHANGE.control, (content) => {
    if (parseControlEvent(content)?.type === 'domains.changed') {
      void domains.reload();
    }
  });
  const metrics = createIngressMetrics();
  const context: HandlerContext = { settings, broker, domains, logger, metrics };
  const onEtrn: EtrnHandler = async (domain, session) => {
    const log = logger.child({ session, domain });
    if (!domains.has(domain)) {
      log.info('ETRN refused: not a member domain');
      return { outcome: 'not-allowed', reason: 'not a member domain' };
    }
    try {
      await broker.publishEvent(
        EXCHANGE.control,
        Buffer.from(JSON.stringify({ type: 'flush', domain })),
      );
    } catch (error) {
      log.warn({ err: error }, 'ETRN failed: the flush could not be published');
      return { outcome: 'unavailable' };
    }
    log.info('ETRN: flush requested');
    return { outcome: 'started' };
  };
  const tls = await loadTlsCredentials(
    settings.MX_TLS_CERT_FILE,
    settings.MX_TLS_KEY_FILE,
    settings.MX_HOSTNAME,
  );

  const server = new SMTPServer({
    name: settings.MX_HOSTNAME,
    banner: 'ESMTP secondary-mx',
    size: settings.MX_MAX_MESSAGE_SIZE,
    hideENHANCEDSTATUSCODES: false,
    hideDSN: false,
    hideREQUIRETLS: true,
    disabledCommands: ['AUTH'],
    authOptional: true,
    resolver: createReverseResolver(settings.DNS_SERVERS),
    closeTimeout: CLOSE_TIMEOUT_MS,
    ...tls,
    logger: false,
    onConnect(session, callback) {
      logger.info(
        { session: session.id, client: session.remoteAddress, name: session.clientHostname },
        'connect',
      );
      callback();
    },
    onMailFrom: onMailFrom(context),
    onRcptTo: onRcptTo(context),
    onData: onData(context),
    // Read by the ETRN handler that installEtrn adds to smtp-server.
    ...({ onEtrn } as object),
    onClose(session) {
      logger.info({ session: session.id, client: session.remoteAddress }, 'disconnect');
    },
  });
  server.on('error', (error) => logger.error({ err: error }, 'SMTP server error'));

  // Started first, so a metrics address in use stops the service before it takes mail.
  let metricsServer: MetricsServer | undefined;
  if (settings.MX_INGRESS_METRICS_LISTEN !== undefined) {
    metricsServer = await startMetricsServer(
      metrics.registry,
      settings.MX_INGRESS_METRICS_LISTEN,
      logger,
    );
  }

  void broker.start();
  domains.start();
  const { host, port } = settings.MX_SMTP_LISTEN;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  logger.info({ host, port }, 'ingress listening');

  return {
    server,
    metricsServer,
    async stop() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      domains.stop();
      await broker.stop();
      await metricsServer?.close();
    },
  };
}
