/**
 * Prometheus metrics of the greylist service, in a registry of its own that packages/metrics
 * serves on MX_GREYLIST_METRICS_LISTEN.
 */
import { BROKER_ERROR_KINDS } from '@secondary-mx/amqp';
import { GREYLIST_REASONS, type GreylistCheckReply } from '@secondary-mx/contracts';
import { registerBackendMetrics } from '@secondary-mx/metrics';
import { Counter, collectDefaultMetrics, Registry } from 'prom-client';

/** Reasons outside this set count as `other`, so a changed peer cannot grow the labels. */
const KNOWN_REASONS: ReadonlySet<string> = new Set(GREYLIST_REASONS);

/** The live state that gauges read at scrape time. */
export interface GreylistMetricSources {
  rabbitmqConnected: () => boolean;
  redisReady: () => boolean;
}

export interface GreylistMetrics {
  registry: Registry;
  /** Counts a verdict this service replied with. */
  countVerdict(verdict: GreylistCheckReply): void;
  countRabbitmqError(kind: string): void;
  /** Counts a Redis failure: `connection` from the client, `command` from a failed check. */
  countRedisError(kind: 'connection' | 'command'): void;
}

export function createGreylistMetrics(sources: GreylistMetricSources): GreylistMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const verdicts = new Counter({
    name: 'secondary_mx_greylist_checks_total',
    help: 'greylist.check requests handled by this service, by result (pass or defer) and reason.',
    labelNames: ['result', 'reason'],
    registers: [registry],
  });
  const countRabbitmqError = registerBackendMetrics(registry, {
    backend: 'rabbitmq',
    upMeaning: 'connected to RabbitMQ',
    errorMeaning: 'RabbitMQ failures: connect, connection (lost), channel, publish (not confirmed)',
    errorKinds: BROKER_ERROR_KINDS,
    isUp: sources.rabbitmqConnected,
  });
  const countRedisError = registerBackendMetrics(registry, {
    backend: 'redis',
    upMeaning: 'connected to Redis',
    errorMeaning:
      'Redis failures: connection errors of the client, and command failures that made a check fail and go back to its queue',
    errorKinds: ['connection', 'command'],
    isUp: sources.redisReady,
  });
  return {
    registry,
    countVerdict(verdict) {
      const reason = KNOWN_REASONS.has(verdict.reason) ? verdict.reason : 'other';
      verdicts.inc({ result: verdict.action, reason });
    },
    countRabbitmqError,
    countRedisError,
  };
}
