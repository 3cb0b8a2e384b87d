/**
 * Health checks behind `GET /health`. Each check returns `ok` when its dependency works and a
 * short word for what is wrong otherwise, such as `disconnected` or `unreachable`.
 */

/** One check of a dependency; resolves `ok` or a short word for what is wrong. */
export type HealthCheck = () => string | Promise<string>;

/** The checks of one service by name, such as `rabbitmq` or `database`. */
export type HealthChecks = Record<string, HealthCheck>;

export interface HealthReport {
  /** `ok` when every check returned `ok`, else `unavailable`. */
  status: 'ok' | 'unavailable';
  checks: Record<string, string>;
}

/** How long one check may take before it is reported as `timed out`. */
const CHECK_TIMEOUT_MS = 3000;

async function runCheck(check: HealthCheck): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve('timed out'), CHECK_TIMEOUT_MS);
  });
  try {
    return await Promise.race([Promise.resolve().then(check), timeout]);
  } catch {
    return 'failed';
  } finally {
    clearTimeout(timer);
  }
}

/** Runs every check at once and returns the report. A check that throws is reported `failed`. */
export async function runHealthChecks(checks: HealthChecks): Promise<HealthReport> {
  const names = Object.keys(checks);
  const results = await Promise.all(names.map((name) => runCheck(checks[name] as HealthCheck)));
  const report: Record<string, string> = {};
  names.forEach((name, index) => {
    report[name] = results[index] as string;
  });
  const status = results.every((result) => result === 'ok') ? 'ok' : 'unavailable';
  return { status, checks: report };
}
