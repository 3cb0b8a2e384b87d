/**
 * Prometheus metrics of a delivery worker, in a registry of its own that packages/metrics
 * serves on MX_DELIVERY_METRICS_LISTEN. Each replica counts only its own work.
 */
import { BROKER_ERROR_KINDS } from '@secondary-mx/amqp';
import type { RecipientOutcome } from '@secondary-mx/contracts';
import { registerBackendMetrics } from '@secondary-mx/metrics';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

/** Counters that the job, probe and verify handlers update. */
export interface WorkerObserver {
  /** Counts the outcome of one recipient of a delivery job. */
  countAttempt(
    status: RecipientOutcome['status'],
    failureKind: RecipientOutcome['failureKind'],
  ): void;
  /** Records how long a delivery job took, from its start to its last reply. */
  observeJob(durationMs: number): void;
  countProbe(answered: boolean): void;
  countVerification(result: 'valid' | 'invalid' | 'unknown'): void;
}

export interface WorkerMetrics extends WorkerObserver {
  registry: Registry;
  countRabbitmqError(kind: string): void;
}

export function createWorkerMetrics(sources: { rabbitmqConnected: () => boolean }): WorkerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const attempts = new Counter({
    name: 'secondary_mx_delivery_attempts_total',
    help: 'Recipients of delivery jobs by result (delivered, deferred, failed) and failure_kind: none, connection (no server replied), reply (the server replied 4xx or 5xx), notAttempted (handed back untried).',
    labelNames: ['result', 'failure_kind'],
    registers: [registry],
  });
  const jobs = new Histogram({
    name: 'secondary_mx_delivery_job_duration_seconds',
    help: 'Duration of delivery jobs: next-hop lookup, SMTP session and every message of the job.',
    buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
    registers: [registry],
  });
  const probes = new Counter({
    name: 'secondary_mx_probes_total',
    help: 'Probes of next hops that had stopped replying, by result: answered (a next hop replied) or unanswered.',
    labelNames: ['result'],
    registers: [registry],
  });
  const verifications = new Counter({
    name: 'secondary_mx_recipient_verifications_total',
    help: 'recipient.verify requests checked with the primary, by result: valid, invalid or unknown.',
    labelNames: ['result'],
    registers: [registry],
  });
  const countRabbitmqError = registerBackendMetrics(registry, {
    backend: 'rabbitmq',
    upMeaning: 'connected to RabbitMQ',
    errorMeaning: 'RabbitMQ failures: connect, connection (lost), channel, publish (not confirmed)',
    errorKinds: BROKER_ERROR_KINDS,
    isUp: sources.rabbitmqConnected,
  });
  return {
    registry,
    countAttempt(status, failureKind) {
      attempts.inc({ result: status, failure_kind: failureKind ?? 'none' });
    },
    observeJob(durationMs) {
      jobs.observe(durationMs / 1000);
    },
    countProbe(answered) {
      probes.inc({ result: answered ? 'answered' : 'unanswered' });
    },
    countVerification(result) {
      verifications.inc({ result });
    },
    countRabbitmqError,
  };
}
