import type { DeliveryResult } from '@secondary-mx/contracts';
import type { Pool } from './connection.ts';

export interface Backoff {
  minMs: number;
  maxMs: number;
}

export interface RecordedOutcome {
  recipientId: string;
  address: string;
  state: string;
}

/**
 * Records the outcome of one delivery job. A `delivered` outcome is always kept, since the mail
 * did reach the primary; a `deferred` or `failed` one only while the job's lease is still the
 * current one, so a late result cannot undo a newer attempt. A deferred recipient is tried
 * again after min(maxMs, minMs * 2^(attempts - 1)), with 10 % jitter. The jitter is drawn once
 * per result, so the recipients of one job stay due together and go out in one transaction
 * again. Once every recipient of the message is final, its bytes are deleted. Returns the
 * recipients whose state changed.
 */
export async function recordDeliveryResult(
  pool: Pool,
  result: DeliveryResult,
  backoff: Backoff,
): Promise<RecordedOutcome[]> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const attemptedAt = new Date(result.attemptedAt);
    const updated = await client.query<RecordedOutcome>(
      `WITH outcome AS (
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])
           AS o(id, status, reply, code, remote_mta)
       )
       UPDATE recipients r SET
         state = o.status::recipient_state,
         attempts = r.attempts + 1,
         last_attempt_at = $7,
         last_reply = o.reply,
         last_enhanced_code = o.code,
         remote_mta = o.remote_mta,
         lease_id = NULL,
         lease_until = NULL,
         next_attempt_at = CASE WHEN o.status = 'deferred'
           THEN now() + make_interval(secs =>
             LEAST($9::float8, $8::float8 * power(2, LEAST(r.attempts, 40))) * $11::float8)
           ELSE r.next_attempt_at END,
         completed_at = CASE WHEN o.status IN ('delivered', 'failed') THEN now() ELSE NULL END
       FROM outcome o
       WHERE r.id = o.id AND r.message_id = $6
         AND (
           (o.status = 'delivered' AND r.state NOT IN ('delivered', 'failed', 'expired'))
           OR (r.state = 'active' AND r.lease_id = $10::uuid)
         )
       RETURNING r.id AS "recipientId", r.address, r.state`,
      [
        result.outcomes.map((outcome) => outcome.recipientId),
        result.outcomes.map((outcome) => outcome.status),
        result.outcomes.map((outcome) => outcome.reply),
        result.outcomes.map((outcome) => outcome.enhancedCode ?? null),
        result.outcomes.map((outcome) => outcome.remoteMta ?? null),
        result.queueId,
        attemptedAt,
        backoff.minMs / 1000,
        backoff.maxMs / 1000,
        result.leaseId,
        0.9 + Math.random() * 0.2,
      ],
    );
    await client.query(
      `INSERT INTO delivery_attempts (recipient_id, attempted_at, status, reply, remote_mta)
       SELECT o.id, $6, o.status, o.reply, o.remote_mta
       FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS o(id, status, reply, remote_mta)
       JOIN recipients r ON r.id = o.id AND r.message_id = $5`,
      [
        result.outcomes.map((outcome) => outcome.recipientId),
        result.outcomes.map((outcome) => outcome.status),
        result.outcomes.map((outcome) => outcome.reply),
        result.outcomes.map((outcome) => outcome.remoteMta ?? null),
        result.queueId,
        attemptedAt,
      ],
    );
    await completeMessageIfFinal(client, result.queueId);
    await client.query('COMMIT');
    return updated.rows;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/** Deletes the bytes of a message whose recipients are all final and marks it completed. */
export async function completeMessageIfFinal(
  client: { query: Pool['query'] },
  queueId: string,
): Promise<boolean> {
  const result = await client.query(
    `UPDATE messages SET body = NULL, completed_at = now()
     WHERE id = $1 AND completed_at IS NULL
       AND NOT EXISTS (
         SELECT 1 FROM recipients
         WHERE message_id = $1 AND state NOT IN ('delivered', 'failed', 'expired')
       )`,
    [queueId],
  );
  return (result.rowCount ?? 0) > 0;
}
