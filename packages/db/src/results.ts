import type { DeliveryResult } from '@secondary-mx/contracts';
import type { Queryable } from './connection.ts';

export interface Backoff {
  minMs: number;
  maxMs: number;
}

/** A recipient whose state a result changed, with what a DSN about it needs. */
export interface ChangedRecipient {
  recipientId: string;
  queueId: string;
  address: string;
  domain: string;
  /** `hold` or `failed` instead of `deferred` when an administrator's request was pending. */
  state: 'delivered' | 'deferred' | 'failed' | 'hold';
  notify: string[] | null;
  orcpt: string | null;
  lastReply: string | null;
  enhancedCode: string | null;
  remoteMta: string | null;
  remoteDsn: boolean | null;
  failureKind: 'connection' | 'reply' | null;
  lastAttemptAt: Date;
  /** Bounced by an administrator: queue-store's maintenance sends the DSN, not the result. */
  bouncePending: boolean;
}

/** Columns a result returns for each recipient whose state it changed. */
const CHANGED_COLUMNS = `r.id::text AS "recipientId", r.message_id AS "queueId", r.address,
  r.domain, r.state, r.notify, r.orcpt, r.last_reply AS "lastReply",
  r.last_enhanced_code AS "enhancedCode", r.remote_mta AS "remoteMta",
  r.remote_dsn AS "remoteDsn", r.last_failure_kind AS "failureKind",
  r.last_attempt_at AS "lastAttemptAt", r.bounce_pending AS "bouncePending"`;

/**
 * Records the outcomes of one delivery job. A `delivered` outcome is always kept, since the
 * mail did reach the primary; a `deferred` or `failed` one only while the job's lease is still
 * the current one, so a late result cannot undo a newer attempt. A deferred recipient is tried
 * again after min(maxMs, minMs * 2^(attempts - 1)), with 10 % jitter. The jitter is drawn once
 * per result, so the recipients of one job stay due together and go out in one transaction
 * again. Every outcome is kept in delivery_attempts, except those the worker handed back
 * untried (failure kind `notAttempted`), which are due again at once with their last attempt
 * left as it was. A hold or bounce requested by an administrator during the lease turns a
 * deferred or untried outcome into `hold` or `failed` (trigger recipients_pending_action).
 * Returns the recipients whose state changed.
 */
export async function applyDeliveryOutcomes(
  db: Queryable,
  result: DeliveryResult,
  backoff: Backoff,
): Promise<ChangedRecipient[]> {
  const untried = result.outcomes.filter((outcome) => outcome.failureKind === 'notAttempted');
  const handedBack = await handBackUntried(db, result.leaseId, untried);
  const attempted = result.outcomes.filter((outcome) => outcome.failureKind !== 'notAttempted');
  if (attempted.length === 0) {
    return handedBack;
  }
  const recorded = await recordAttempts(db, { ...result, outcomes: attempted }, backoff);
  return [...handedBack, ...recorded];
}

/**
 * Makes recipients that the worker handed back untried due at once, while the job's lease is
 * still the current one. Their attempts, last reply and failure kind stay as they were.
 */
async function handBackUntried(
  db: Queryable,
  leaseId: string,
  outcomes: DeliveryResult['outcomes'],
): Promise<ChangedRecipient[]> {
  if (outcomes.length === 0) {
    return [];
  }
  const updated = await db.query<ChangedRecipient>(
    `UPDATE recipients r SET state = 'deferred', lease_id = NULL, lease_until = NULL,
       next_attempt_at = now()
     FROM unnest($1::bigint[], $2::text[]) AS o(id, queue_id)
     WHERE r.id = o.id AND r.message_id = o.queue_id
       AND r.state = 'active' AND r.lease_id = $3::uuid
     RETURNING ${CHANGED_COLUMNS}`,
    [
      outcomes.map((outcome) => outcome.recipientId),
      outcomes.map((outcome) => outcome.queueId),
      leaseId,
    ],
  );
  return updated.rows;
}

/** Records outcomes of recipients the worker did try, with backoff and delivery_attempts rows. */
async function recordAttempts(
  db: Queryable,
  result: DeliveryResult,
  backoff: Backoff,
): Promise<ChangedRecipient[]> {
  const attemptedAt = new Date(result.attemptedAt);
  const outcomes = result.outcomes;
  const updated = await db.query<ChangedRecipient>(
    `WITH outcome AS (
       SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                            $6::text[], $7::text[], $8::boolean[])
         AS o(id, queue_id, status, reply, code, remote_mta, failure_kind, remote_dsn)
     )
     UPDATE recipients r SET
       state = o.status::recipient_state,
       attempts = r.attempts + 1,
       last_attempt_at = $9,
       last_reply = o.reply,
       last_enhanced_code = o.code,
       remote_mta = o.remote_mta,
       last_failure_kind = CASE WHEN o.status = 'deferred' THEN o.failure_kind END,
       remote_dsn = o.remote_dsn,
       lease_id = NULL,
       lease_until = NULL,
       next_attempt_at = CASE WHEN o.status = 'deferred'
         THEN now() + make_interval(secs =>
           LEAST($11::float8, $10::float8 * power(2, LEAST(r.attempts, 40))) * $13::float8)
         ELSE r.next_attempt_at END,
       completed_at = CASE WHEN o.status IN ('delivered', 'failed') THEN now() ELSE NULL END
     FROM outcome o
     WHERE r.id = o.id AND r.message_id = o.queue_id
       AND (
         (o.status = 'delivered' AND r.state NOT IN ('delivered', 'failed', 'expired'))
         OR (r.state = 'active' AND r.lease_id = $12::uuid)
       )
     RETURNING ${CHANGED_COLUMNS}`,
    [
      outcomes.map((outcome) => outcome.recipientId),
      outcomes.map((outcome) => outcome.queueId),
      outcomes.map((outcome) => outcome.status),
      outcomes.map((outcome) => outcome.reply),
      outcomes.map((outcome) => outcome.enhancedCode ?? null),
      outcomes.map((outcome) => outcome.remoteMta ?? null),
      outcomes.map((outcome) => outcome.failureKind ?? null),
      outcomes.map((outcome) => outcome.remoteDsn ?? null),
      attemptedAt,
      backoff.minMs / 1000,
      backoff.maxMs / 1000,
      result.leaseId,
      0.9 + Math.random() * 0.2,
    ],
  );
  await db.query(
    `INSERT INTO delivery_attempts (recipient_id, attempted_at, status, reply, remote_mta)
     SELECT o.id, $6, o.status, o.reply, o.remote_mta
     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])
       AS o(id, queue_id, status, reply, remote_mta)
     JOIN recipients r ON r.id = o.id AND r.message_id = o.queue_id`,
    [
      outcomes.map((outcome) => outcome.recipientId),
      outcomes.map((outcome) => outcome.queueId),
      outcomes.map((outcome) => outcome.status),
      outcomes.map((outcome) => outcome.reply),
      outcomes.map((outcome) => outcome.remoteMta ?? null),
      attemptedAt,
    ],
  );
  return updated.rows;
}

/**
 * Deletes the bytes of each named message whose recipients are all final and marks it
 * completed. A message with a recipient whose administrator bounce still awaits its DSN keeps
 * its bytes, which the DSN may return. Returns the ids of the messages completed by this call.
 */
export async function completeFinalMessages(db: Queryable, queueIds: string[]): Promise<string[]> {
  if (queueIds.length === 0) {
    return [];
  }
  const result = await db.query<{ id: string }>(
    `UPDATE messages m SET body = NULL, completed_at = now()
     WHERE m.id = ANY($1) AND m.completed_at IS NULL
       AND NOT EXISTS (
         SELECT 1 FROM recipients r
         WHERE r.message_id = m.id
           AND (r.state NOT IN ('delivered', 'failed', 'expired') OR r.bounce_pending)
       )
     RETURNING m.id`,
    [queueIds],
  );
  return result.rows.map((row) => row.id);
}
