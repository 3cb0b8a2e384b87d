/**
 * kill -9 of each service in turn while 2,000 messages are sent; a supervisor starts the
 * service again 1.5 s later. Every message that got 250 must reach the primary.
 */
import { after, before, test } from 'node:test';
import type { ServiceName } from '@secondary-mx/testkit';
import { checkResult, report } from './checks.ts';
import { FaultSystem } from './fault-system.ts';

const MESSAGES = 2000;
const SESSIONS = 15;
const RESTART_DELAY_MS = 1500;

let system: FaultSystem;

before(async () => {
  system = await FaultSystem.start();
});

after(async () => {
  await system?.stop();
});

async function killAndRestart(name: ServiceName, index = 0): Promise<void> {
  system.signal(name, 'SIGKILL', index);
  await new Promise((resolve) => setTimeout(resolve, RESTART_DELAY_MS));
  await system.restart(name, index);
}

const victims: [string, ServiceName, number][] = [
  ['kill-ingress', 'ingress', 0],
  ['kill-greylist', 'greylist', 0],
  ['kill-queue-store', 'queue-store', 0],
  ['kill-delivery-worker', 'delivery-worker', 1],
];

for (const [fault, name, index] of victims) {
  test(`kill -9 of ${name} loses no mail`, async () => {
    const result = await system.runScenario(fault, {
      messages: MESSAGES,
      sessions: SESSIONS,
      faultAt: 0.3,
      drainTimeoutMs: 60_000,
      inject: () => killAndRestart(name, index),
    });
    report(result);
    try {
      checkResult(system, result);
    } finally {
      await system.restartCrashed();
    }
  });
}
