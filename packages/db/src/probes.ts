/**
 * Destinations whose next hop did not answer. Each is probed with a doubling interval, from
 * the minimum to the maximum, until a probe or a delivery succeeds; then the recipients that
 * waited for it are made due at once.
 */
import type { Queryable } from './connection.ts';

export interface ClaimedProbe {
  domain: string;
  probeId: string;
}

export interface ProbeIntervals {
  minMs: number;
  maxMs: number;
}

/** Why a destination did not answer: the failed attempt's reply or our description of it. */
export interface UnreachableReason {
  reply: string;
  remoteMta?: string | undefined;
}

/**
 * Starts probing the domains, unless they are probed already, and records the latest reason
 * they are unreachable.
 */
export async function markUnreachable(
  db: Queryable,
  domains: string[],
  intervals: ProbeIntervals,
  reason?: UnreachableReason,
): Promise<void> {
  if (domains.length === 0) {
    return;
  }
  await db.query(
    `INSERT INTO destination_probes (domain, next_probe_at, interval_ms, last_reply, remote_mta)
     SELECT d, now() + make_interval(secs => $2), $3, $4, $5 FROM unnest($1::text[]) AS d
     ON CONFLICT (domain) DO UPDATE SET
       last_reply = COALESCE(EXCLUDED.last_reply, destination_probes.last_reply),
       remote_mta = COALESCE(EXCLUDED.remote_mta, destination_probes.remote_mta)`,
    [
      domains,
      intervals.minMs / 1000,
      intervals.minMs,
      reason?.reply ?? null,
      reason?.remoteMta ?? null,
    ],
  );
}

/**
 * Makes the domain's recipients that wait for an unreachable next hop due now and stops
 * probing it. Returns how many recipients were rescheduled.
 */
export async function markReachable(db: Queryable, domain: string): Promise<number> {
  await db.query('DELETE FROM destination_probes WHERE domain = $1', [domain]);
  const result = await db.query(
    `UPDATE recipients SET next_attempt_at = now()
     WHERE domain = $1 AND state = 'deferred' AND last_failure_kind = 'connection'
       AND next_attempt_at > now()`,
    [domain],
  );
  return result.rowCount ?? 0;
}

/**
 * Claims the probes that are due and moves each one's next time out by its doubled interval.
 * A domain no longer waiting for its next hop, or with deliveries in flight (which test the
 * next hop themselves), is dropped or skipped instead.
 */
export async function claimDueProbes(
  db: Queryable,
  intervals: ProbeIntervals,
  limit: number,
): Promise<ClaimedProbe[]> {
  await db.query(
    `DELETE FROM destination_probes p
     WHERE NOT EXISTS (
       SELECT 1 FROM recipients r
       WHERE r.domain = p.domain AND r.state = 'deferred' AND r.last_failure_kind = 'connection'
     )`,
  );
  const result = await db.query<ClaimedProbe>(
    `WITH due AS (
       SELECT p.domain FROM destination_probes p
       WHERE p.next_probe_at <= now()
         AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.domain = p.domain AND r.state = 'active')
       ORDER BY p.next_probe_at
       LIMIT $2
       FOR UPDATE OF p SKIP LOCKED
     )
     UPDATE destination_probes p SET
       interval_ms = LEAST($1::int, p.interval_ms * 2),
       next_probe_at = now() + make_interval(secs => LEAST($1::int, p.interval_ms * 2) / 1000.0),
       probe_id = gen_random_uuid()
     FROM due WHERE p.domain = due.domain
     RETURNING p.domain, p.probe_id::text AS "probeId"`,
    [intervals.maxMs, limit],
  );
  return result.rows;
}
