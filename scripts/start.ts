/**
 * Runs all five services on this machine, like a small init: each service is a child process
 * with this process's environment; one that crashes is started again after a pause, one that
 * exits for invalid settings (status 78) stops the whole run, and SIGTERM or SIGINT is passed
 * to every child before this process exits.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadSettings, SETTINGS, type SettingName } from '@secondary-mx/config';

const SERVICES = ['queue-store', 'greylist', 'delivery-worker', 'ingress', 'admin-api'];
const EX_CONFIG = 78;
const RESTART_DELAY_MS = 2000;

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
  setTimeout(() => process.exit(exitCode || 1), 40_000).unref();
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
