/** Counts over the spool for the queue API's stats route. */
import { RECIPIENT_STATES, type RecipientState } from '@secondary-mx/contracts';
import type { Pool } from './connection.ts';

export type StateCounts = Record<RecipientState, number>;

export interface ActivityCounts {
  /** Delivery attempts by outcome, from delivery_attempts. */
  delivered: number;
  failed: number;
  deferred: number;
  /** DSNs we queued (messages of kind 'dsn'). */
  dsns: number;
}

export interface SpoolStats {
  states: StateCounts;
  domains: { domain: string; states: StateCounts }[];
  /** Age of the oldest message with a recipient queued, active or deferred, or null. */
  oldestWaitingAgeSeconds: number | null;
  lastHour: ActivityCounts;
  lastDay: ActivityCounts;
}

function emptyCounts(): StateCounts {
  return Object.fromEntries(RECIPIENT_STATES.map((state) => [state, 0])) as StateCounts;
}

interface ActivityRow {
  hourDelivered: number;
  hourFailed: number;
  hourDeferred: number;
  dayDelivered: number;
  dayFailed: number;
  dayDeferred: number;
}

/**
 * Counts recipients by domain and state, the age of the oldest waiting message, and the
 * delivery attempts and DSNs of the last hour and day. With `domain`, only that recipient
 * domain is counted, and a DSN counts when the message it reports on has a recipient there.
 * NOTE: attempts and DSNs are removed with their messages after MX_RETENTION, so with a
 * retention under a day the day's counts miss the removed ones.
 */
export async function spoolStats(pool: Pool, domain?: string): Promise<SpoolStats> {
  const scope = [domain ?? null];
  const [byState, oldest, attempts, dsns] = await Promise.all([
    pool.query<{ domain: string; state: RecipientState; count: number }>(
      `SELECT domain, state, count(*)::int AS count FROM recipients
       WHERE ($1::text IS NULL OR domain = $1)
       GROUP BY domain, state
       ORDER BY domain`,
      scope,
    ),
    pool.query<{ age: number | null }>(
      `SELECT extract(epoch FROM now() - min(m.received_at))::float8 AS age
       FROM recipients r JOIN messages m ON m.id = r.message_id
       WHERE r.state IN ('queued', 'active', 'deferred') AND ($1::text IS NULL OR r.domain = $1)`,
      scope,
    ),
    pool.query<ActivityRow>(
      `SELECT
         count(*) FILTER (WHERE a.status = 'delivered' AND a.attempted_at > now() - interval '1 hour')::int AS "hourDelivered",
         count(*) FILTER (WHERE a.status = 'failed' AND a.attempted_at > now() - interval '1 hour')::int AS "hourFailed",
         count(*) FILTER (WHERE a.status = 'deferred' AND a.attempted_at > now() - interval '1 hour')::int AS "hourDeferred",
         count(*) FILTER (WHERE a.status = 'delivered')::int AS "dayDelivered",
         count(*) FILTER (WHERE a.status = 'failed')::int AS "dayFailed",
         count(*) FILTER (WHERE a.status = 'deferred')::int AS "dayDeferred"
       FROM delivery_attempts a
       WHERE a.attempted_at > now() - interval '1 day'
         AND ($1::text IS NULL
              OR EXISTS (SELECT 1 FROM recipients r WHERE r.id = a.recipient_id AND r.domain = $1))`,
      scope,
    ),
    pool.query<{ hour: number; day: number }>(
      `SELECT count(*) FILTER (WHERE d.received_at > now() - interval '1 hour')::int AS hour,
              count(*)::int AS day
       FROM messages d
       WHERE d.kind = 'dsn' AND d.received_at > now() - interval '1 day'
         AND ($1::text IS NULL
              OR EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = d.dsn_of AND r.domain = $1))`,
      scope,
    ),
  ]);

  const states = emptyCounts();
  const domains = new Map<string, StateCounts>();
  for (const row of byState.rows) {
    states[row.state] += row.count;
    const counts = domains.get(row.domain) ?? emptyCounts();
    counts[row.state] = row.count;
    domains.set(row.domain, counts);
  }
  const activity = attempts.rows[0] as ActivityRow;
  const dsnCounts = dsns.rows[0] ?? { hour: 0, day: 0 };
  const age = oldest.rows[0]?.age ?? null;
  return {
    states,
    domains: [...domains].map(([name, counts]) => ({ domain: name, states: counts })),
    oldestWaitingAgeSeconds: age === null ? null : Math.max(0, Math.floor(age)),
    lastHour: {
      delivered: activity.hourDelivered,
      failed: activity.hourFailed,
      deferred: activity.hourDeferred,
      dsns: dsnCounts.hour,
    },
    lastDay: {
      delivered: activity.dayDelivered,
      failed: activity.dayFailed,
      deferred: activity.dayDeferred,
      dsns: dsnCounts.day,
    },
  };
}
