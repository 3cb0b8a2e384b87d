/** Reporting and checks shared by the fault scenarios. */
import assert from 'node:assert/strict';
import type { FaultSystem, ScenarioResult } from './fault-system.ts';

/** Prints the summary line of a scenario and what the load saw besides 250. */
export function report(result: ScenarioResult): void {
  console.log(result.line);
  console.log(`  replies other than 250: ${JSON.stringify(result.failures)}`);
  for (const [problem, count] of Object.entries(result.problems)) {
    console.log(`  logged ${count}x ${problem}`);
  }
}

/**
 * Checks that no accepted message was lost, nothing waits or failed in the spool, the load was
 * mostly accepted and no service exited by itself.
 */
export function checkResult(system: FaultSystem, result: ScenarioResult): void {
  const context = `${result.line}\nwaiting: ${JSON.stringify(result.waiting)}\n${system.logs()}`;
  assert.deepEqual(result.lost.slice(0, 20), [], `accepted messages lost\n${context}`);
  assert.deepEqual(result.waiting, {}, `recipients still waiting\n${context}`);
  assert.equal(result.failed, 0, `recipients failed\n${context}`);
  assert.ok(result.accepted >= result.sent * 0.95, `too few messages accepted\n${context}`);
  assert.deepEqual(
    system.crashed().map((child) => child.name),
    [],
    `a service exited by itself\n${context}`,
  );
}
