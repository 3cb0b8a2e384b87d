/**
 * The metrics every service keeps about a backend it uses (RabbitMQ, PostgreSQL or Redis): an
 * `up` gauge read at scrape time and an error counter by kind.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

export interface BackendMetricsOptions {
  /** The backend in the metric names: `secondary_mx_<backend>_up` and `..._errors_total`. */
  backend: 'rabbitmq' | 'database' | 'redis';
  /** What `up` means, for the help text, such as "connected to RabbitMQ". */
  upMeaning: string;
  /** What the error kinds count, for the help text. */
  errorMeaning: string;
  /** Every kind of error, so that each series exists from the start with 0. */
  errorKinds: readonly string[];
  /** Reads whether the backend is usable now; called on every scrape. */
  isUp: () => boolean | Promise<boolean>;
}

/** Registers the two metrics and returns the function that counts one error of a kind. */
export function registerBackendMetrics(
  registry: Registry,
  options: BackendMetricsOptions,
): (kind: string) => void {
  const { backend, isUp } = options;
  new Gauge({
    name: `secondary_mx_${backend}_up`,
    help: `Whether this process is ${options.upMeaning} (1) or not (0).`,
    registers: [registry],
    async collect() {
      // A failing check must not fail the whole scrape, so it reads as down.
      const up = await Promise.resolve()
        .then(isUp)
        .catch(() => false);
      this.set(up ? 1 : 0);
    },
  });
  const errors = new Counter({
    name: `secondary_mx_${backend}_errors_total`,
    help: `${options.errorMeaning}, by kind.`,
    labelNames: ['kind'],
    registers: [registry],
  });
  for (const kind of options.errorKinds) {
    errors.inc({ kind }, 0);
  }
  return (kind) => errors.inc({ kind });
}
