/** Spool figures for metrics, read with a few aggregate queries on every scrape. */
import { RECIPIENT_STATES, type RecipientState } from '@secondary-mx/contracts';
import type { Queryable } from './connection.ts';

/** States of recipients that still wait for delivery; `hold` waits for an administrator. */
export const WAITING_STATES: readonly RecipientState[] = ['queued', 'active', 'deferred'];

export interface SpoolCounts {
  /** Recipients by member domain and state, with 0 for every state of every approved domain. */
  byDomain: Map<string, Map<RecipientState, number>>;
  /** Recipients outside the member domains by state: DSNs to senders, or removed domains. */
  other: Map<RecipientState, number>;
}

function zeroCounts(): Map<RecipientState, number> {
  return new Map(RECIPIENT_STATES.map((state) => [state, 0]));
}

/**
 * Counts the recipients in the spool by domain and state. Final recipients are counted until
 * their message is removed after MX_RETENTION.
 * NOTE: this reads every recipient row, so its cost grows with the spool.
 */
export async function countSpool(db: Queryable): Promise<SpoolCounts> {
  const [domains, counts] = await Promise.all([
    db.query<{ name: string }>(`SELECT name FROM domains WHERE state = 'approved'`),
    db.query<{ domain: string | null; state: RecipientState; count: number }>(
      `SELECT d.name AS domain, r.state::text AS state, count(*)::int AS count
       FROM recipients r LEFT JOIN domains d ON d.name = r.domain
       GROUP BY d.name, r.state`,
    ),
  ]);
  const byDomain = new Map(domains.rows.map((row) => [row.name, zeroCounts()]));
  const other = zeroCounts();
  for (const row of counts.rows) {
    let states = other;
    if (row.domain !== null) {
      states = byDomain.get(row.domain) ?? zeroCounts();
      byDomain.set(row.domain, states);
    }
    states.set(row.state, row.count);
  }
  return { byDomain, other };
}

/**
 * Returns the receive time of the oldest message with a waiting recipient, by message kind
 * (`mail`, or `dsn` for a DSN we generated). A kind without one is left out.
 */
export async function oldestWaiting(db: Queryable): Promise<Map<'mail' | 'dsn', Date>> {
  const result = await db.query<{ kind: 'mail' | 'dsn'; receivedAt: Date }>(
    `SELECT m.kind, min(m.received_at) AS "receivedAt"
     FROM messages m
     WHERE m.completed_at IS NULL
       AND EXISTS (SELECT 1 FROM recipients r
                   WHERE r.message_id = m.id AND r.state = ANY($1::recipient_state[]))
     GROUP BY m.kind`,
    [WAITING_STATES],
  );
  return new Map(result.rows.map((row) => [row.kind, row.receivedAt]));
}
