/** Reads a service's /metrics and /health listener, for tests of metrics and health. */

export interface HealthResponse {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the service returns.
  body: any;
}

/** Returns the text exposition of /metrics; throws unless the status is 200. */
export async function scrapeMetrics(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  const text = await response.text();
  if (response.status !== 200) {
    throw new Error(`GET /metrics on port ${port} returned ${response.status}: ${text}`);
  }
  return text;
}

/**
 * Returns the value of one series, written as in the exposition (`name{label="value"}`), or
 * undefined when the series is absent.
 */
export function metricValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Calls GET /health and returns the status and the parsed JSON body. */
export async function fetchHealth(port: number): Promise<HealthResponse> {
  const response = await fetch(`http://127.0.0.1:${port}/health`);
  return { status: response.status, body: await response.json() };
}

/** Polls GET /health until it returns the status; rejects with the last body after timeoutMs. */
export async function waitForHealth(
  port: number,
  status: number,
  timeoutMs = 15_000,
): Promise<HealthResponse> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const health = await fetchHealth(port);
    if (health.status === status) {
      return health;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `GET /health on port ${port} still returns ${health.status} ${JSON.stringify(health.body)} after ${timeoutMs} ms, expected ${status}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
