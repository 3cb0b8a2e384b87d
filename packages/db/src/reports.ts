/**
 * Queries behind delivery status notifications: the original message a DSN reports on, the
 * recipients that expired, those due a delay warning and those an administrator bounced.
 */
import type { Queryable } from './connection.ts';

/** The original message as a DSN needs it. */
export interface ReportedMessage {
  id: string;
  kind: 'mail' | 'dsn';
  dsnOf: string | null;
  sender: string;
  body: Buffer | null;
  ret: 'FULL' | 'HDRS' | null;
  envid: string | null;
  receivedAt: Date;
  expiresAt: Date;
}

/** A recipient reported in a DSN. */
export interface ReportedRecipient {
  recipientId: string;
  queueId: string;
  address: string;
  notify: string[] | null;
  orcpt: string | null;
  lastReply: string | null;
  enhancedCode: string | null;
  remoteMta: string | null;
  lastAttemptAt: Date | null;
}

const REPORTED_RECIPIENT_COLUMNS = `r.id::text AS "recipientId", r.message_id AS "queueId",
  r.address, r.notify, r.orcpt, r.last_reply AS "lastReply",
  r.last_enhanced_code AS "enhancedCode", r.remote_mta AS "remoteMta",
  r.last_attempt_at AS "lastAttemptAt"`;

export async function loadReportedMessages(
  db: Queryable,
  queueIds: string[],
): Promise<Map<string, ReportedMessage>> {
  const result = await db.query<ReportedMessage>(
    `SELECT id, kind, dsn_of AS "dsnOf", sender, body, ret, envid,
            received_at AS "receivedAt", expires_at AS "expiresAt"
     FROM messages WHERE id = ANY($1)`,
    [queueIds],
  );
  return new Map(result.rows.map((row) => [row.id, row]));
}

/**
 * Marks up to `limit` waiting recipients of messages past their lifetime `expired` and
 * returns them. Recipients on hold wait for an administrator and do not expire; leased ones
 * expire after their result comes in.
 */
export async function expireRecipients(db: Queryable, limit: number): Promise<ReportedRecipient[]> {
  const result = await db.query<ReportedRecipient>(
    `WITH due AS (
       SELECT r.id FROM recipients r JOIN messages m ON m.id = r.message_id
       WHERE r.state IN ('queued', 'deferred') AND m.expires_at <= now()
       LIMIT $1
       FOR UPDATE OF r SKIP LOCKED
     )
     UPDATE recipients r SET state = 'expired', completed_at = now()
     FROM due WHERE r.id = due.id
     RETURNING ${REPORTED_RECIPIENT_COLUMNS}`,
    [limit],
  );
  return result.rows;
}

/**
 * Claims up to `limit` waiting recipients that reached a delay-warning age they were not
 * handled for, and records every age they have now passed, so each age is handled once
 * however late the pass runs. `agesMs` must be sorted ascending. Returns the claimed recipients.
 */
export async function claimDelayWarnings(
  db: Queryable,
  agesMs: number[],
  limit: number,
): Promise<ReportedRecipient[]> {
  if (agesMs.length === 0) {
    return [];
  }
  const ages = agesMs.map((ms) => ms / 1000);
  const result = await db.query<ReportedRecipient>(
    `WITH due AS (
       SELECT r.id, m.received_at FROM recipients r JOIN messages m ON m.id = r.message_id
       WHERE r.state IN ('queued', 'deferred', 'hold') AND m.kind = 'mail'
         AND r.delay_warnings < $2
         AND m.received_at <= now() - make_interval(secs => ($1::float8[])[r.delay_warnings + 1])
       LIMIT $3
       FOR UPDATE OF r SKIP LOCKED
     )
     UPDATE recipients r SET delay_warnings = (
       SELECT count(*) FROM unnest($1::float8[]) AS age
       WHERE due.received_at <= now() - make_interval(secs => age)
     )
     FROM due WHERE r.id = due.id
     RETURNING ${REPORTED_RECIPIENT_COLUMNS}`,
    [ages, ages.length, limit],
  );
  return result.rows;
}

/**
 * Claims up to `limit` recipients bounced by an administrator whose DSN is not queued yet and
 * clears their mark, so the caller queues the DSN in the same transaction. Returns them.
 */
export async function claimPendingBounces(
  db: Queryable,
  limit: number,
): Promise<ReportedRecipient[]> {
  const result = await db.query<ReportedRecipient>(
    `WITH due AS (
       SELECT r.id FROM recipients r WHERE r.bounce_pending
       LIMIT $1
       FOR UPDATE OF r SKIP LOCKED
     )
     UPDATE recipients r SET bounce_pending = false
     FROM due WHERE r.id = due.id
     RETURNING ${REPORTED_RECIPIENT_COLUMNS}`,
    [limit],
  );
  return result.rows;
}

/** Deletes up to `limit` completed messages older than the retention; returns how many. */
export async function purgeCompletedMessages(
  db: Queryable,
  retentionMs: number,
  limit: number,
): Promise<number> {
  const result = await db.query(
    `DELETE FROM messages WHERE id IN (
       SELECT id FROM messages
       WHERE completed_at IS NOT NULL AND completed_at < now() - make_interval(secs => $1)
       LIMIT $2
     )`,
    [retentionMs / 1000, limit],
  );
  return result.rowCount ?? 0;
}
