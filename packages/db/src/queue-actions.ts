/**
 * Administrator actions on spooled recipients, one message or every recipient that matches a
 * filter, in batches of messages with one statement each:
 *
 * - retry: queued and deferred recipients become due now. Their destinations stop being
 *   probed, so the scheduler tries them instead of deferring them until the next probe.
 * - hold: queued and deferred recipients go on hold, which the scheduler and expiry skip. An
 *   active recipient goes on hold when its attempt ends, unless the attempt delivers or fails it.
 * - release: held recipients become due now, `queued` when they were never tried and
 *   `deferred` otherwise. It also withdraws a hold requested for an active recipient.
 * - delete: removes the recipients in any state, and a message left without recipients. An
 *   attempt in flight may still deliver a deleted recipient; its result is then dropped.
 * - bounce: waiting and held recipients fail with the reply `554 5.0.0 Message returned to the
 *   sender by an administrator`, and an active one does so when its attempt ends unless the
 *   attempt delivers or fails it. queue-store then sends the DSN (bounce_pending).
 *
 * The requests on active recipients are kept in recipients.pending_action and applied by the
 * database trigger recipients_pending_action, so every path that ends a lease applies them.
 */
import type { Pool, PoolClient } from './connection.ts';
import { withTransaction } from './connection.ts';
import { completeFinalMessages } from './results.ts';
import {
  allOf,
  messageConditions,
  recipientConditions,
  type SpoolFilter,
  SqlParameters,
} from './spool-filter.ts';

export const QUEUE_ACTIONS = ['retry', 'hold', 'release', 'delete', 'bounce'] as const;
export type QueueAction = (typeof QUEUE_ACTIONS)[number];

/** The reply a recipient bounced by an administrator gets, set by apply_pending_action(). */
export const ADMIN_BOUNCE_REPLY = '554 5.0.0 Message returned to the sender by an administrator';

interface ActionStatement {
  /** The recipients the action changes, as a condition on `recipients r`. */
  applies: string;
  /** The SET list of the UPDATE, or undefined for a DELETE. */
  assignments?: string;
}

const STATEMENTS: Record<QueueAction, ActionStatement> = {
  retry: {
    applies: `r.state IN ('queued', 'deferred')`,
    assignments: 'next_attempt_at = now()',
  },
  hold: {
    applies: `(r.state IN ('queued', 'deferred')
      OR (r.state = 'active' AND r.pending_action IS DISTINCT FROM 'hold'))`,
    assignments: `pending_action = 'hold'`,
  },
  release: {
    applies: `(r.state = 'hold' OR (r.state = 'active' AND r.pending_action = 'hold'))`,
    assignments: `state = CASE WHEN r.state <> 'hold' THEN r.state
        WHEN r.attempts = 0 THEN 'queued'::recipient_state
        ELSE 'deferred'::recipient_state END,
      next_attempt_at = CASE WHEN r.state = 'hold' THEN now() ELSE r.next_attempt_at END,
      pending_action = NULL`,
  },
  delete: { applies: 'true' },
  bounce: {
    applies: `(r.state IN ('queued', 'deferred', 'hold')
      OR (r.state = 'active' AND r.pending_action IS DISTINCT FROM 'bounce'))`,
    assignments: `pending_action = 'bounce'`,
  },
};

/** Messages per batch: each batch is one transaction, so locks stay short on a large spool. */
const BATCH_MESSAGES = 500;

export interface QueueActionResult {
  /** Recipients changed, counting active ones whose change waits for their attempt to end. */
  recipients: number;
  /** Messages with at least one changed recipient. */
  messages: number;
}

interface BatchRow {
  lastId: string | null;
  selected: number;
  recipients: number;
  queueIds: string[] | null;
  domains: string[] | null;
}

/**
 * Selects up to BATCH_MESSAGES messages after `after` that have a recipient the action
 * applies to, and changes those recipients. The UPDATE or DELETE checks `applies` again on
 * the current row, so a recipient leased or finished meanwhile is left alone.
 */
async function runBatch(
  client: PoolClient,
  action: QueueAction,
  filter: SpoolFilter,
  after: string | undefined,
): Promise<BatchRow> {
  const statement = STATEMENTS[action];
  const params = new SqlParameters();
  const onMessage = messageConditions(filter, params);
  if (after !== undefined) {
    onMessage.push(`m.id > ${params.add(after)}`);
  }
  const onRecipient = allOf([...recipientConditions(filter, params), statement.applies]);
  const limit = params.add(BATCH_MESSAGES);
  const change =
    statement.assignments === undefined
      ? `DELETE FROM recipients r
         WHERE r.message_id IN (SELECT id FROM batch) AND ${onRecipient}`
      : `UPDATE recipients r SET ${statement.assignments}
         WHERE r.message_id IN (SELECT id FROM batch) AND ${onRecipient}`;
  const result = await client.query<BatchRow>(
    `WITH batch AS (
       SELECT m.id FROM messages m
       WHERE ${allOf(onMessage)}
         AND EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND ${onRecipient})
       ORDER BY m.id
       LIMIT ${limit}
     ),
     changed AS (${change} RETURNING r.message_id, r.domain)
     SELECT (SELECT max(id) FROM batch) AS "lastId",
            (SELECT count(*)::int FROM batch) AS selected,
            (SELECT count(*)::int FROM changed) AS recipients,
            (SELECT array_agg(DISTINCT message_id) FROM changed) AS "queueIds",
            (SELECT array_agg(DISTINCT domain) FROM changed) AS domains`,
    params.values,
  );
  return result.rows[0] as BatchRow;
}

/** Work that follows a batch in its transaction. */
async function finishBatch(client: PoolClient, action: QueueAction, batch: BatchRow) {
  if (action === 'retry' && batch.domains) {
    // A probed destination defers its due recipients until the next probe, so the probes end
    // here and the recipients are tried now. A failed attempt starts the probes again.
    await client.query('DELETE FROM destination_probes WHERE domain = ANY($1)', [batch.domains]);
  }
  if (action === 'delete' && batch.queueIds) {
    await client.query(
      `DELETE FROM messages m WHERE m.id = ANY($1)
         AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id)`,
      [batch.queueIds],
    );
    await completeFinalMessages(client, batch.queueIds);
  }
}

/**
 * Applies an action to every recipient that matches the filter, in batches of messages taken
 * in queue id order. Returns how many recipients and messages it changed.
 */
export async function applyQueueAction(
  pool: Pool,
  action: QueueAction,
  filter: SpoolFilter,
): Promise<QueueActionResult> {
  const total: QueueActionResult = { recipients: 0, messages: 0 };
  let after: string | undefined;
  for (;;) {
    const batch = await withTransaction(pool, async (client) => {
      const row = await runBatch(client, action, filter, after);
      await finishBatch(client, action, row);
      return row;
    });
    total.recipients += batch.recipients;
    total.messages += batch.queueIds?.length ?? 0;
    if (batch.selected < BATCH_MESSAGES || batch.lastId === null) {
      return total;
    }
    after = batch.lastId;
  }
}
