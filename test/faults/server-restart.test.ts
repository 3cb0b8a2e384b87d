/**
 * Restarts of RabbitMQ, PostgreSQL and Redis in the middle of a load of messages. No service
 * is restarted: each must reconnect by itself, and every message that got 250 must reach the
 * primary.
 *
 * These scenarios restart the machine's shared servers, so they must never run at the same
 * time as other tests.
 */
import { after, before, test } from 'node:test';
import { checkResult, report } from './checks.ts';
import { FaultSystem } from './fault-system.ts';
import { restartPostgres, restartRabbitMq, restartRedis } from './local-servers.ts';

const MESSAGES = 1500;
const SESSIONS = 15;
const DOWN_MS = 2000;

let system: FaultSystem;

before(async () => {
  system = await FaultSystem.start();
});

after(async () => {
  await system?.stop();
});

const restarts: [string, string, () => Promise<void>][] = [
  ['restart-rabbitmq', 'RabbitMQ', () => restartRabbitMq(DOWN_MS)],
  ['restart-postgresql', 'PostgreSQL', () => restartPostgres()],
  ['restart-redis', 'Redis', () => restartRedis(DOWN_MS)],
];

for (const [fault, server, restart] of restarts) {
  test(`${server} restart loses no mail`, async () => {
    const result = await system.runScenario(fault, {
      messages: MESSAGES,
      sessions: SESSIONS,
      faultAt: 0.3,
      drainTimeoutMs: 60_000,
      inject: restart,
    });
    report(result);
    try {
      checkResult(system, result);
    } finally {
      await system.restartCrashed();
    }
  });
}
