/**
 * Runs all five services on this machine, like a small init: each service is a child process
 * with this process's environment; one that crashes is started again after a pause, one that
 * exits for invalid settings (status 78) stops the whole run, and SIGTERM or SIGINT is passed
 * to every child as SIGTERM before this process exits. The children run in a process group of
 * their own, so Ctrl-C in a terminal reaches them only through this process. Otherwise each
 * child would get SIGINT from the terminal and SIGTERM from here, and a second signal makes a
 * service exit at once instead of finishing its work.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadSettings, SETTINGS, type SettingName } from '@secondary-mx/config';

const SERVICES = ['queue-store', 'greylist', 'delivery-worker', 'ingress', 'admin-api'];
const EX_CONFIG = 78;
const RESTART_DELAY_MS = 2000;
/** Time beyond the longest stop of a child, whose own limit ends it before this one. */
const STOP_MARGIN_MS = 30_000;

const root = fileURLToPath(new URL('..', import.meta.url));
const children = new Map<string, ChildProcess>();
let stopping = false;

function log(message: string): void {
  process.stderr.write(`start: ${message}\n`);
}

function run(service: string): void {
  const child = spawn(process.execPath, ['--import', 'tsx', `services/${service}/src/main.ts`], {
    cwd: root,
    env: process.env,
    stdio: 'inherit',
    detached: true,
  });
  children.set(service, child);
  child.on('exit', (code, signal) => {
    children.delete(service);
    if (stopping) {
      if (children.size === 0) {
        process.exit(process.exitCode ?? 0);
      }
      return;
    }
    if (code === EX_CONFIG) {
      log(`${service} stopped: invalid settings (see above); stopping all services`);
      stop('SIGTERM', EX_CONFIG);
      return;
    }
    log(`${service} exited (${signal ?? `status ${code}`}), restarting in ${RESTART_DELAY_MS} ms`);
    setTimeout(() => run(service), RESTART_DELAY_MS);
  });
}

function stop(signal: NodeJS.Signals, exitCode = 0): void {
  stopping = true;
  if (children.size === 0) {
    process.exit(exitCode);
  }
  for (const child of children.values()) {
    child.kill(signal);
  }
  process.exitCode = exitCode;
  setTimeout(() => {
    // The children have their own process group, so they would outlive this process.
    for (const child of children.values()) {
      child.kill('SIGKILL');
    }
    process.exit(exitCode || 1);
  }, stopLimitMs()).unref();
}

/**
 * Returns how long the children may take to stop: the shutdown grace, the longest wait of an
 * SMTP command in ingress after it, and a margin.
 */
function stopLimitMs(): number {
  const settings = loadSettings([
    'MX_SHUTDOWN_GRACE',
    'MX_SPOOL_TIMEOUT',
    'MX_GREYLIST_TIMEOUT',
    'MX_VERIFY_TIMEOUT',
    'MX_DNS_TIMEOUT',
  ]);
  const commandWaitMs = Math.max(
    settings.MX_SPOOL_TIMEOUT,
    settings.MX_GREYLIST_TIMEOUT,
    settings.MX_VERIFY_TIMEOUT,
    settings.MX_DNS_TIMEOUT,
  );
  return settings.MX_SHUTDOWN_GRACE + commandWaitMs + STOP_MARGIN_MS;
}

/**
 * Checks every setting of every service before any starts, so that one run lists all invalid
 * or missing values at once instead of only those of the first service to stop.
 */
function checkSettings(): void {
  try {
    loadSettings(Object.keys(SETTINGS) as SettingName[]);
  } catch (error) {
    if (error instanceof ConfigError) {
      log(error.message);
      process.exit(EX_CONFIG);
    }
    throw error;
  }
}

checkSettings();
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGTERM'));
for (const service of SERVICES) {
  run(service);
}
