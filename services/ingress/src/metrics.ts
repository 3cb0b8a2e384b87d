/**
 * Prometheus metrics of ingress, in a registry of its own that packages/metrics serves on
 * MX_INGRESS_METRICS_LISTEN.
 */
import { BROKER_ERROR_KINDS } from '@secondary-mx/amqp';
import { GREYLIST_REASONS } from '@secondary-mx/contracts';
import { registerBackendMetrics } from '@secondary-mx/metrics';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';

/** Reasons outside this set count as `other`, so a changed peer cannot grow the labels. */
const KNOWN_REASONS: ReadonlySet<string> = new Set(GREYLIST_REASONS);

/** The live state that gauges read at scrape time. */
export interface IngressMetricSources {
  /** SMTP sessions admitted and not yet closed. */
  activeSessions: () => number;
  rabbitmqConnected: () => boolean;
  redisReady: () => boolean;
}

export interface IngressMetrics {
  registry: Registry;
  /** Counts a verdict of the greylist service. */
  countVerdict(action: 'pass' | 'defer', reason: string): void;
  /** Counts a check without a verdict in time, by the MX_GREYLIST_ON_ERROR policy applied. */
  countUnavailable(policy: 'open' | 'closed'): void;
  /** Counts a TCP connection to the SMTP listener, admitted or not. */
  countSession(): void;
  /** Counts one SMTP reply by its three-digit code. */
  countReply(code: number): void;
  countRabbitmqError(kind: string): void;
  countRedisError(kind: string): void;
}

export function createIngressMetrics(sources: IngressMetricSources): IngressMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const verdicts = new Counter({
    name: 'secondary_mx_greylist_verdicts_total',
    help: 'Greylist verdicts per recipient, by result (pass or defer) and reason.',
    labelNames: ['result', 'reason'],
    registers: [registry],
  });
  const unavailable = new Counter({
    name: 'secondary_mx_greylist_unavailable_total',
    help: 'Recipients without a greylist verdict within MX_GREYLIST_TIMEOUT, by the policy applied: open accepted them, closed deferred them.',
    labelNames: ['policy'],
    registers: [registry],
  });
  const sessions = new Counter({
    name: 'secondary_mx_smtp_sessions_total',
    help: 'TCP connections to the SMTP listener, including those refused with 421 by the connection limits.',
    registers: [registry],
  });
  new Gauge({
    name: 'secondary_mx_smtp_sessions_active',
    help: 'SMTP sessions admitted by the connection limits and not yet closed.',
    registers: [registry],
    collect() {
      this.set(sources.activeSessions());
    },
  });
  const replies = new Counter({
    name: 'secondary_mx_smtp_replies_total',
    help: 'SMTP replies sent, by reply code, including the greeting and the replies that close a session.',
    labelNames: ['code'],
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
    upMeaning: 'connected to Redis, which holds the verify cache',
    errorMeaning: 'Redis connection errors',
    errorKinds: ['connection'],
    isUp: sources.redisReady,
  });
  return {
    registry,
    countVerdict(action, reason) {
      verdicts.inc({ result: action, reason: KNOWN_REASONS.has(reason) ? reason : 'other' });
    },
    countUnavailable(policy) {
      unavailable.inc({ policy });
    },
    countSession() {
      sessions.inc();
    },
    countReply(code) {
      replies.inc({ code: String(code) });
    },
    countRabbitmqError,
    countRedisError,
  };
}
