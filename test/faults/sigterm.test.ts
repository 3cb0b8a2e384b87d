/**
 * SIGTERM of each service in turn during a load of messages: the service must exit with status
 * 0 within its stop timeout, and is then started again. Every message that got 250 must reach
 * the primary.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ServiceName } from '@secondary-mx/testkit';
import { checkResult, report } from './checks.ts';
import { FaultSystem } from './fault-system.ts';

const MESSAGES = 1500;
const SESSIONS = 15;
/**
 * The longest stop limit of a service in this suite, plus 2 s: ingress's limit is
 * MX_SHUTDOWN_GRACE (5 s here) plus its longest reply wait (MX_SPOOL_TIMEOUT, 10 s here) plus
 * lifecycle's CLOSE_MARGIN_MS (10 s).
 */
const STOP_TIMEOUT_MS = 27_000;

let system: FaultSystem;

before(async () => {
  system = await FaultSystem.start();
});

after(async () => {
  await system?.stop();
});

interface StopOutcome {
  code: number | null | undefined;
  elapsedMs: number;
  /** The stopped process's last log lines. */
  tail: string;
}

/** Sends SIGTERM and waits for the exit; SIGKILL after STOP_TIMEOUT_MS. */
async function terminate(name: ServiceName, index: number): Promise<StopOutcome> {
  const started = Date.now();
  const child = system.signal(name, 'SIGTERM', index);
  const timer = setTimeout(() => child.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  const code = await child.wait();
  clearTimeout(timer);
  return { code, elapsedMs: Date.now() - started, tail: child.tail(20) };
}

const services: [string, ServiceName, number][] = [
  ['sigterm-ingress', 'ingress', 0],
  ['sigterm-greylist', 'greylist', 0],
  ['sigterm-queue-store', 'queue-store', 0],
  ['sigterm-delivery-worker', 'delivery-worker', 1],
  ['sigterm-admin-api', 'admin-api', 0],
];

for (const [fault, name, index] of services) {
  test(`SIGTERM of ${name} exits 0 and loses no mail`, async () => {
    let stop: StopOutcome | undefined;
    const result = await system.runScenario(fault, {
      messages: MESSAGES,
      sessions: SESSIONS,
      faultAt: 0.3,
      drainTimeoutMs: 60_000,
      inject: async () => {
        try {
          stop = await terminate(name, index);
        } finally {
          await system.restart(name, index);
        }
      },
    });
    report(result);
    console.log(`  ${name} exited with ${stop?.code} after ${stop?.elapsedMs} ms`);
    try {
      assert.equal(stop?.code, 0, `${name} exit status after SIGTERM\n${stop?.tail}`);
      checkResult(system, result);
    } finally {
      await system.restartCrashed();
    }
  });
}
