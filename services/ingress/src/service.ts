/**
 * ingress: the SMTP listener. Relays for approved member domains only, applies each domain's
 * recipient check, asks the greylist service about each recipient and hands each message to
 * queue-store.
 */

import { normalizeDomain } from '@secondary-mx/address';
import { Broker } from '@secondary-mx/amqp';
import { EXCHANGE, parseControlEvent, QUEUE } from '@secondary-mx/contracts';
import type { Logger } from '@secondary-mx/logger';
import { type HealthChecks, type MetricsServer, startMetricsServer } from '@secondary-mx/metrics';
import { SMTPServer } from 'smtp-server';
import { ApprovedDomains } from './approved-domains.ts';
import { onClose, onConnect } from './connection-handlers.ts';
import { ConnectionLimits } from './connection-limits.ts';
import { DnsblChecker } from './dnsbl.ts';
import { installEnhancedCodeShim } from './enhanced-codes.ts';
import { limitErrors } from './error-limit.ts';
import { installRawParameters } from './esmtp-parameters.ts';
import { type EtrnHandler, installEtrn } from './etrn.ts';
import { installExpn } from './expn.ts';
import { stopGracefully } from './graceful-stop.ts';
import { createIngressMetrics } from './metrics.ts';
import { rejectEarlyTalkers } from './pregreet.ts';
import { PregreetPasses } from './pregreet-passes.ts';
import { RecipientVerifier } from './recipient-verifier.ts';
import { closeRedis, connectRedis } from './redis.ts';
import { countReplies } from './reply-counter.ts';
import { createReverseResolver } from './reverse-resolver.ts';
import { SenderDomainChecker } from './sender-domain.ts';
import type { IngressSettings } from './settings.ts';
import { type HandlerContext, onData, onMailFrom, onRcptTo } from './smtp-handlers.ts';
import { SpoolAvailability } from './spool-availability.ts';
import { readTlsCredentials, watchTlsCredentials } from './tls-certificate.ts';
import { VerifyCache } from './verify-cache.ts';

/** Margin after the longest wait of a command handler, for its reply to be written. */
const REPLY_MARGIN_MS = 1000;

/**
 * Returns how long a command in progress at the end of the shutdown grace may take to get its
 * reply: the longest of the waits that a handler bounds by a setting, plus a margin.
 */
export function replyWaitMs(settings: IngressSettings): number {
  const waits = [
    settings.MX_SPOOL_TIMEOUT,
    settings.MX_GREYLIST_TIMEOUT,
    settings.MX_VERIFY_TIMEOUT,
    settings.MX_DNS_TIMEOUT,
  ];
  return Math.max(...waits) + REPLY_MARGIN_MS;
}

/** Returns 'ok' while the RPC queue has a consumer, and 'unknown' while RabbitMQ is down. */
async function checkConsumers(broker: Broker, queue: string): Promise<string> {
  const consumers = await broker.consumerCount(queue);
  if (consumers === undefined) {
    return 'unknown';
  }
  return consumers > 0 ? 'ok' : 'not consuming';
}

/**
 * Builds the checks of what ingress needs to reply 250 after DATA: RabbitMQ, a queue-store
 * consuming spool.store whose latest reply was not a failure, and the approved domains,
 * without which every RCPT gets 451. With MX_GREYLIST_ON_ERROR=closed a greylist service is
 * needed too. Redis is left out, because a failed cache read counts as a miss.
 */
function ingressHealthChecks(
  settings: IngressSettings,
  broker: Broker,
  domains: ApprovedDomains,
  spool: SpoolAvailability,
): HealthChecks {
  const checks: HealthChecks = {
    rabbitmq: () => (broker.connected ? 'ok' : 'disconnected'),
    // A queue-store that consumes but cannot reach PostgreSQL leaves every RCPT deferred.
    'queue-store': async () => {
      const consumers = await checkConsumers(broker, QUEUE.spoolStore);
      return consumers === 'ok' && spool.failing ? 'failing' : consumers;
    },
    domains: () => (domains.loaded ? 'ok' : 'not loaded'),
  };
  if (settings.MX_GREYLIST_ON_ERROR === 'closed') {
    checks.greylist = () => checkConsumers(broker, QUEUE.greylistCheck);
  }
  return checks;
}

export async function startIngress(settings: IngressSettings, logger: Logger) {
  installEnhancedCodeShim();
  installEtrn(normalizeDomain);
  installExpn();
  installRawParameters();
  const broker = new Broker({
    url: settings.AMQP_URL,
    prefix: settings.MX_AMQP_PREFIX,
    logger,
    connectionName: 'ingress',
  });
  const spool = new SpoolAvailability(broker, logger);
  const domains = new ApprovedDomains(broker, logger, settings.MX_DOMAIN_REFRESH, spool);
  broker.subscribe(EXCHANGE.control, (content) => {
    if (parseControlEvent(content)?.type === 'domains.changed') {
      void domains.reload();
    }
  });
  const limits = new ConnectionLimits(
    settings.MX_HOSTNAME,
    settings.MX_MAX_CONNECTIONS,
    settings.MX_MAX_CONNECTIONS_PER_CLIENT,
  );
  const redis = connectRedis(settings.REDIS_URL, logger);
  const metrics = createIngressMetrics({
    activeSessions: () => limits.size,
    rabbitmqConnected: () => broker.connected,
    redisReady: () => redis.status === 'ready',
  });
  broker.onError((kind) => metrics.countRabbitmqError(kind));
  redis.on('error', () => metrics.countRedisError('connection'));
  const verifier = new RecipientVerifier(
    broker,
    new VerifyCache(
      redis,
      settings.MX_REDIS_PREFIX,
      settings.MX_VERIFY_POSITIVE_TTL,
      settings.MX_VERIFY_NEGATIVE_TTL,
    ),
    settings.MX_VERIFY_TIMEOUT,
  );
  const context: HandlerContext = {
    settings,
    broker,
    domains,
    senderDomains: new SenderDomainChecker(settings.DNS_SERVERS, settings.MX_DNS_TIMEOUT),
    dnsbl: new DnsblChecker(
      settings.MX_DNSBL_ZONES,
      settings.DNS_SERVERS,
      settings.MX_DNS_TIMEOUT,
      logger,
    ),
    verifier,
    logger,
    metrics,
    pregreet: new PregreetPasses(settings.MX_PREGREET_TTL),
    spool,
  };
  const onEtrn: EtrnHandler = async (domain, session) => {
    const log = logger.child({ session, domain });
    // A suspended domain's waiting mail is still delivered, so its primary may ask for it.
    if (!domains.has(domain) && !domains.isSuspended(domain)) {
      log.info('ETRN rejected: not a member domain');
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
  const { MX_TLS_CERT_FILE: certFile, MX_TLS_KEY_FILE: keyFile } = settings;
  const tls = certFile === '' ? undefined : readTlsCredentials(certFile, keyFile);

  const server = new SMTPServer({
    name: settings.MX_HOSTNAME,
    // smtp-server writes `220 <name> ESMTP <banner>`.
    banner: 'secondary-mx',
    size: settings.MX_MAX_MESSAGE_SIZE,
    hideENHANCEDSTATUSCODES: false,
    hideDSN: false,
    hideREQUIRETLS: true,
    // Without a certificate STARTTLS is neither advertised nor accepted.
    disabledCommands: tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    hideSTARTTLS: !tls,
    ...tls,
    authOptional: true,
    resolver: createReverseResolver(settings.DNS_SERVERS),
    // NOTE: an idle timeout only, in commands and in DATA alike. A client that sends a byte
    // within every interval keeps its session; only MX_MAX_CONNECTIONS_PER_CLIENT bounds that.
    socketTimeout: settings.MX_SMTP_TIMEOUT,
    logger: false,
    onConnect: onConnect(context, limits),
    onMailFrom: onMailFrom(context),
    onRcptTo: onRcptTo(context),
    onData: onData(context),
    // Read by the ETRN handler that installEtrn adds to smtp-server.
    ...({ onEtrn } as object),
    onClose: onClose(context, limits),
  });
  server.on('error', (error) => logger.error({ err: error }, 'SMTP server error'));
  // Before limitErrors, so that its closing 421 is counted too (see reply-counter.ts).
  countReplies(server, (code) => metrics.countReply(code));
  rejectEarlyTalkers(server, (session, client) => {
    context.pregreet.rejectEarlyTalker(session, client);
    logger.info({ session, client, reply: 554 }, 'client sent a command before the greeting');
  });
  limitErrors(server, settings.MX_MAX_ERRORS, (session, client, errors) => {
    logger.info({ session, client, errors, reply: 421 }, 'too many errors, connection closed');
  });
  const stopWatchingTls = tls
    ? watchTlsCredentials(server, certFile, keyFile, settings.MX_TLS_RELOAD_INTERVAL, logger)
    : () => undefined;

  // Started first, so a metrics address in use stops the service before it takes mail.
  let metricsServer: MetricsServer | undefined;
  if (settings.MX_INGRESS_METRICS_LISTEN !== undefined) {
    metricsServer = await startMetricsServer(
      metrics.registry,
      settings.MX_INGRESS_METRICS_LISTEN,
      logger,
      ingressHealthChecks(settings, broker, domains, spool),
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
    /**
     * Closes the listener, lets sessions in progress finish within MX_SHUTDOWN_GRACE (see
     * graceful-stop.ts), then disconnects.
     */
    async stop() {
      stopWatchingTls();
      await stopGracefully(server, {
        graceMs: settings.MX_SHUTDOWN_GRACE,
        replyWaitMs: replyWaitMs(settings),
        logger,
      });
      domains.stop();
      await broker.stop();
      await closeRedis(redis);
      await metricsServer?.close();
    },
  };
}
