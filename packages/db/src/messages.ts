import type { RecipientState } from '@secondary-mx/contracts';
import type { Pool } from './connection.ts';

export interface RecipientView {
  id: string;
  address: string;
  domain: string;
  state: RecipientState;
  attempts: number;
  nextAttemptAt: Date | null;
  lastAttemptAt: Date | null;
  lastReply: string | null;
  remoteMta: string | null;
}

export interface MessageView {
  id: string;
  sender: string;
  size: number;
  receivedAt: Date;
  expiresAt: Date;
  completedAt: Date | null;
  recipients: RecipientView[];
}

export interface MessageFilter {
  domain?: string | undefined;
  state?: RecipientState | undefined;
  /** Returns messages with an id after this one: the cursor of the previous page. */
  after?: string | undefined;
  limit: number;
}

/**
 * Lists messages in arrival order with their recipients. With a domain or state filter, a
 * message is listed when any recipient matches, and only the matching recipients are shown.
 */
export async function listMessages(pool: Pool, filter: MessageFilter): Promise<MessageView[]> {
  const result = await pool.query<MessageView>(
    `SELECT m.id, m.sender, m.size, m.received_at AS "receivedAt", m.expires_at AS "expiresAt",
            m.completed_at AS "completedAt",
            json_agg(json_build_object(
              'id', r.id::text, 'address', r.address, 'domain', r.domain, 'state', r.state,
              'attempts', r.attempts,
              'nextAttemptAt', CASE WHEN r.state IN ('queued', 'deferred') THEN r.next_attempt_at END,
              'lastAttemptAt', r.last_attempt_at, 'lastReply', r.last_reply,
              'remoteMta', r.remote_mta
            ) ORDER BY r.id) AS recipients
     FROM messages m JOIN recipients r ON r.message_id = m.id
     WHERE ($1::text IS NULL OR r.domain = $1)
       AND ($2::recipient_state IS NULL OR r.state = $2)
       AND ($3::text IS NULL OR m.id > $3)
     GROUP BY m.id
     ORDER BY m.id
     LIMIT $4`,
    [filter.domain ?? null, filter.state ?? null, filter.after ?? null, filter.limit],
  );
  return result.rows;
}
