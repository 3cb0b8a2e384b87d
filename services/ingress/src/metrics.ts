/**
 * Prometheus metrics of ingress, in a registry of its own that packages/metrics serves on
 * MX_INGRESS_METRICS_LISTEN.
 */
import { Counter, collectDefaultMetrics, Registry } from 'prom-client';

/** Verdict reasons the greylist service sends; any other counts as `other`, to bound labels. */
const KNOWN_REASONS = new Set([
  'new',
  'too-early',
  'retried',
  'no-delay',
  'whitelisted',
  'auto-whitelisted',
  'whitelisted-client',
  'whitelisted-name',
  'whitelisted-sender',
  'invalid-request',
]);

export interface IngressMetrics {
  registry: Registry;
  /** Counts a verdict of the greylist service. */
  countVerdict(action: 'pass' | 'defer', reason: string): void;
  /** Counts a check without a verdict in time, by the MX_GREYLIST_ON_ERROR policy applied. */
  countUnavailable(policy: 'open' | 'closed'): void;
}

export function createIngressMetrics(): IngressMetrics {
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
  return {
    registry,
    countVerdict(action, reason) {
      verdicts.inc({ result: action, reason: KNOWN_REASONS.has(reason) ? reason : 'other' });
    },
    countUnavailable(policy) {
      unavailable.inc({ policy });
    },
  };
}
