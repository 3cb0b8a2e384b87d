import type { Pool } from './connection.ts';

/**
 * Makes every waiting (`queued` or `deferred`) recipient of a domain due now, so the next
 * scheduler pass leases it. Recipients on `hold`, leased or final are left alone. Returns how
 * many recipients were rescheduled.
 */
export async function flushDomain(pool: Pool, domain: string): Promise<number> {
  const result = await pool.query(
    `UPDATE recipients SET next_attempt_at = now()
     WHERE domain = $1 AND state IN ('queued', 'deferred')`,
    [domain],
  );
  return result.rowCount ?? 0;
}
