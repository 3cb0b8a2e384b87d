// The container health check: calls GET /health of the service this container runs and exits
// 0 on 200, 1 otherwise. The service is the first argument, or else the service name found on
// the command line of process 1, which is `tini -- run-service.sh <service>` in the image.
// The address comes from the same setting the service reads, with the same default.
import { readFileSync } from 'node:fs';

const LISTEN_SETTINGS = {
  ingress: ['MX_INGRESS_METRICS_LISTEN', '127.0.0.1:9101'],
  greylist: ['MX_GREYLIST_METRICS_LISTEN', '127.0.0.1:9102'],
  'queue-store': ['MX_QUEUE_STORE_METRICS_LISTEN', '127.0.0.1:9103'],
  'delivery-worker': ['MX_DELIVERY_METRICS_LISTEN', '127.0.0.1:9104'],
  'admin-api': ['MX_ADMIN_LISTEN', '127.0.0.1:8025'],
};
const TIMEOUT_MS = 5000;

function serviceOfProcessOne() {
  try {
    const args = readFileSync('/proc/1/cmdline', 'utf8').split('\0');
    return args.find((arg) => Object.hasOwn(LISTEN_SETTINGS, arg));
  } catch {
    return undefined;
  }
}

/** Returns the URL of /health for a `host:port`, `[v6]:port` or `:port` listen address. */
function healthUrl(listen) {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen.trim());
  if (!match) {
    return undefined;
  }
  let host = match[1] ?? match[2];
  if (host === '' || host === '0.0.0.0') {
    host = '127.0.0.1';
  } else if (host === '::') {
    host = '::1';
  }
  const port = Number(match[3]);
  if (port === 0) {
    return undefined;
  }
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}/health`;
}

const service = process.argv[2] ?? serviceOfProcessOne();
if (service === undefined || !Object.hasOwn(LISTEN_SETTINGS, service)) {
  console.error(
    `healthcheck: unknown service ${JSON.stringify(service)}; pass one of ${Object.keys(LISTEN_SETTINGS).join(', ')}`,
  );
  process.exit(1);
}
const [setting, fallback] = LISTEN_SETTINGS[service];
const listen = process.env[setting] ?? fallback;
if (listen.trim() === '') {
  // The operator turned the listener off, so there is nothing to ask. Failing instead would
  // keep the container unhealthy for good and block every service that depends on it.
  console.log(`healthcheck: ${setting} is empty, ${service} is not checked`);
  process.exit(0);
}
const url = healthUrl(listen);
if (url === undefined) {
  console.error(`healthcheck: ${setting}=${JSON.stringify(listen)} names no fixed port to check`);
  process.exit(1);
}
try {
  const response = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  const body = await response.text();
  console.log(`healthcheck: ${service} ${response.status} ${body.trim()}`);
  process.exit(response.status === 200 ? 0 : 1);
} catch (error) {
  console.error(`healthcheck: GET ${url} failed: ${error.message}`);
  process.exit(1);
}
