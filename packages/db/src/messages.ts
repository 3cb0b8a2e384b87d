import type { RecipientState } from '@secondary-mx/contracts';
import type { Pool, Queryable } from './connection.ts';
import {
  allOf,
  messageConditions,
  recipientConditions,
  type SpoolFilter,
  SqlParameters,
} from './spool-filter.ts';

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

export interface DeliveryAttemptView {
  attemptedAt: Date;
  status: string;
  reply: string | null;
  remoteMta: string | null;
}

export interface RecipientDetail extends RecipientView {
  notify: string[] | null;
  orcpt: string | null;
  enhancedCode: string | null;
  /** A hold or bounce requested while the recipient is leased, applied when the attempt ends. */
  pendingAction: 'hold' | 'bounce' | null;
  deliveryAttempts: DeliveryAttemptView[];
}

export interface MessageDetail extends Omit<MessageView, 'recipients'> {
  kind: 'mail' | 'dsn';
  dsnOf: string | null;
  ret: 'FULL' | 'HDRS' | null;
  envid: string | null;
  bodyType: string;
  smtpUtf8: boolean;
  clientAddress: string;
  clientName: string | null;
  heloName: string | null;
  /** False once every recipient is final and the bytes were deleted. */
  bodyStored: boolean;
  recipients: RecipientDetail[];
}

export interface MessageFilter extends SpoolFilter {
  /** Returns messages with an id after this one: the cursor of the previous page. */
  after?: string | undefined;
  limit: number;
}

/** JSON of one recipient in the listing. json_agg turns its timestamps into text. */
const RECIPIENT_JSON = `'id', r.id::text, 'address', r.address, 'domain', r.domain,
  'state', r.state, 'attempts', r.attempts,
  'nextAttemptAt', CASE WHEN r.state IN ('queued', 'deferred') THEN r.next_attempt_at END,
  'lastAttemptAt', r.last_attempt_at, 'lastReply', r.last_reply, 'remoteMta', r.remote_mta`;

const MESSAGE_COLUMNS = `m.id, m.sender, m.size, m.received_at AS "receivedAt",
  m.expires_at AS "expiresAt", m.completed_at AS "completedAt"`;

/**
 * Lists messages in queue id order, which is arrival order, with their recipients. A message
 * is listed when any recipient matches the filter, and only the matching recipients are shown.
 *
 * The page is a keyset on the queue id: a page starts after the last id of the previous one,
 * so messages stored or removed while a client pages through neither repeat nor shift others.
 * NOTE: a queue id starts with its creator's clock, so a message stored by a replica whose
 * clock lags behind can sort before a cursor already passed and is then missed by that walk.
 */
export async function listMessages(pool: Pool, filter: MessageFilter): Promise<MessageView[]> {
  const params = new SqlParameters();
  const onMessage = messageConditions(filter, params);
  const onRecipient = allOf(recipientConditions(filter, params));
  if (filter.after !== undefined) {
    onMessage.push(`m.id > ${params.add(filter.after)}`);
  }
  const limit = params.add(filter.limit);
  const result = await pool.query<MessageView>(
    `WITH page AS (
       SELECT m.id FROM messages m
       WHERE ${allOf(onMessage)}
         AND EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND ${onRecipient})
       ORDER BY m.id
       LIMIT ${limit}
     )
     SELECT ${MESSAGE_COLUMNS},
            json_agg(json_build_object(${RECIPIENT_JSON}) ORDER BY r.id) AS recipients
     FROM page
       JOIN messages m ON m.id = page.id
       JOIN recipients r ON r.message_id = m.id AND ${onRecipient}
     GROUP BY m.id
     ORDER BY m.id`,
    params.values,
  );
  return result.rows;
}

/**
 * Returns one message with its recipients and every delivery attempt of each, or undefined
 * when it is not stored. With `domain`, only the recipients of that domain are shown, and a
 * message without one is treated as not stored.
 */
export async function getMessage(
  db: Queryable,
  queueId: string,
  domain?: string,
): Promise<MessageDetail | undefined> {
  const result = await db.query<MessageDetail>(
    `SELECT ${MESSAGE_COLUMNS}, m.kind, m.dsn_of AS "dsnOf", m.ret, m.envid,
            m.body_type AS "bodyType", m.smtp_utf8 AS "smtpUtf8",
            m.client_address AS "clientAddress", m.client_name AS "clientName",
            m.helo_name AS "heloName", m.body IS NOT NULL AS "bodyStored",
            (SELECT json_agg(json_build_object(${RECIPIENT_JSON},
                 'notify', r.notify, 'orcpt', r.orcpt, 'enhancedCode', r.last_enhanced_code,
                 'pendingAction', r.pending_action,
                 'deliveryAttempts', (
                   SELECT coalesce(json_agg(json_build_object(
                       'attemptedAt', a.attempted_at, 'status', a.status, 'reply', a.reply,
                       'remoteMta', a.remote_mta
                     ) ORDER BY a.attempted_at, a.id), '[]'::json)
                   FROM delivery_attempts a WHERE a.recipient_id = r.id
                 )
               ) ORDER BY r.id)
             FROM recipients r
             WHERE r.message_id = m.id AND ($2::text IS NULL OR r.domain = $2)) AS recipients
     FROM messages m WHERE m.id = $1`,
    [queueId, domain ?? null],
  );
  const message = result.rows[0];
  return message?.recipients ? message : undefined;
}

/**
 * Returns the stored bytes of a message: undefined when the message is not stored, null when
 * its bytes were deleted because every recipient is final.
 */
export async function getMessageBody(
  db: Queryable,
  queueId: string,
): Promise<Buffer | null | undefined> {
  const result = await db.query<{ body: Buffer | null }>(
    'SELECT body FROM messages WHERE id = $1',
    [queueId],
  );
  return result.rows[0]?.body;
}
