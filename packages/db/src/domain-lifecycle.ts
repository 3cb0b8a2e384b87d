/**
 * The lifecycle of a member domain (pending → approved ⇄ suspended → removed) and its history in
 * domain_events. Each change and its event are written by one caller transaction, so the history
 * never misses a change. Events have no foreign key to domains and outlive a removal.
 */
import type { DomainState } from '@secondary-mx/contracts';
import { type Pool, type Queryable, withTransaction } from './connection.ts';
import { DOMAIN_COLUMNS, type DomainChanges, type DomainRow } from './domains.ts';

export type DomainAction = 'request' | 'approve' | 'suspend' | 'remove' | 'change';

export interface DomainEvent {
  id: string;
  domain: string;
  at: Date;
  /** `admin` for MX_ADMIN_TOKEN, else `token:<id>`. */
  actor: string;
  action: DomainAction;
  /** Null for a request. */
  fromState: DomainState | null;
  /** `removed` for a removal. */
  toState: DomainState | 'removed';
  reason: string | null;
  /** Effect of the change besides the state, such as the waiting mail a removal bounced. */
  detail: string | null;
}

export type NewDomainEvent = Omit<DomainEvent, 'id' | 'at' | 'detail'> & { detail?: string | null };

const EVENT_COLUMNS = `id::text AS id, domain, at, actor, action, from_state AS "fromState",
  to_state AS "toState", reason, detail`;

export async function insertDomainEvent(
  db: Queryable,
  event: NewDomainEvent,
): Promise<DomainEvent> {
  const result = await db.query<DomainEvent>(
    `INSERT INTO domain_events (domain, actor, action, from_state, to_state, reason, detail)
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${EVENT_COLUMNS}`,
    [
      event.domain,
      event.actor,
      event.action,
      event.fromState,
      event.toState,
      event.reason,
      event.detail ?? null,
    ],
  );
  return result.rows[0] as DomainEvent;
}

/** Returns the domain's events, oldest first, those of earlier registrations included. */
export async function listDomainEvents(db: Queryable, domain: string): Promise<DomainEvent[]> {
  const result = await db.query<DomainEvent>(
    `SELECT ${EVENT_COLUMNS} FROM domain_events WHERE domain = $1 ORDER BY domain_events.id`,
    [domain],
  );
  return result.rows;
}

/** Reads the domain and locks its row until the transaction ends. */
export async function lockDomain(db: Queryable, name: string): Promise<DomainRow | undefined> {
  const result = await db.query<DomainRow>(
    `SELECT ${DOMAIN_COLUMNS} FROM domains WHERE name = $1 FOR UPDATE`,
    [name],
  );
  return result.rows[0];
}

/** Sets the state of a domain locked with lockDomain; approval also sets approved_at once. */
export async function setDomainState(
  db: Queryable,
  name: string,
  state: DomainState,
): Promise<DomainRow> {
  const result = await db.query<DomainRow>(
    `UPDATE domains SET state = $2::domain_state, updated_at = now(),
       approved_at = CASE WHEN $2::domain_state = 'approved' THEN COALESCE(approved_at, now())
                          ELSE approved_at END
     WHERE name = $1 RETURNING ${DOMAIN_COLUMNS}`,
    [name, state],
  );
  return result.rows[0] as DomainRow;
}

/**
 * Deletes the domain row, whose recipient list and member tokens go with it (ON DELETE CASCADE),
 * and the probe state of its next hop.
 */
export async function deleteDomain(db: Queryable, name: string): Promise<void> {
  await db.query('DELETE FROM domains WHERE name = $1', [name]);
  await db.query('DELETE FROM destination_probes WHERE domain = $1', [name]);
}

/** Recipients of a domain that are not final yet. */
export interface UndeliveredCounts {
  /** `queued`, `deferred` or `hold`. */
  waiting: number;
  /** `active`: leased to a delivery worker right now. */
  active: number;
}

export async function countUndelivered(db: Queryable, domain: string): Promise<UndeliveredCounts> {
  const result = await db.query<UndeliveredCounts>(
    `SELECT count(*) FILTER (WHERE state IN ('queued', 'deferred', 'hold'))::int AS waiting,
            count(*) FILTER (WHERE state = 'active')::int AS active
     FROM recipients WHERE domain = $1 AND state IN ('queued', 'deferred', 'hold', 'active')`,
    [domain],
  );
  return result.rows[0] ?? { waiting: 0, active: 0 };
}

/** Recipients of a domain that a removal bounced. */
export interface BouncedCounts {
  /** Waiting recipients marked `failed` now, with bounce_pending set for queue-store's DSN. */
  failed: number;
  /**
   * Active recipients marked with pending_action `bounce`: they fail with the queue API's
   * administrator bounce once their attempt ends, unless that attempt delivers or fails them.
   */
  pending: number;
}

/**
 * Bounces every recipient of a domain that is not final yet. Waiting (`queued`, `deferred`,
 * `hold`) ones fail at once with our own reply and no remote MTA, and queue-store then sends
 * their DSN (bounce_pending). Active ones get the administrator bounce of the queue API when
 * their attempt ends.
 */
export async function bounceUndelivered(
  db: Queryable,
  domain: string,
  reply: string,
  enhancedCode: string,
): Promise<BouncedCounts> {
  const result = await db.query<BouncedCounts>(
    `WITH failed AS (
       UPDATE recipients SET state = 'failed', completed_at = now(), last_reply = $2,
         last_enhanced_code = $3, remote_mta = NULL, last_failure_kind = NULL,
         pending_action = NULL, bounce_pending = true
       WHERE domain = $1 AND state IN ('queued', 'deferred', 'hold')
       RETURNING 1
     ),
     pending AS (
       UPDATE recipients SET pending_action = 'bounce'
       WHERE domain = $1 AND state = 'active'
       RETURNING 1
     )
     SELECT (SELECT count(*)::int FROM failed) AS failed,
            (SELECT count(*)::int FROM pending) AS pending`,
    [domain, reply, enhancedCode],
  );
  return result.rows[0] ?? { failed: 0, pending: 0 };
}

/**
 * Deletes every recipient of a domain that is not final yet, and each message left without
 * recipients. An attempt in flight may still deliver a deleted recipient, and its result is
 * then dropped. Returns how many recipients were deleted and the queue ids of their messages.
 */
export async function deleteUndelivered(
  db: Queryable,
  domain: string,
): Promise<{ recipients: number; queueIds: string[] }> {
  const deleted = await db.query<{ queueId: string }>(
    `DELETE FROM recipients WHERE domain = $1 AND state IN ('queued', 'deferred', 'hold', 'active')
     RETURNING message_id AS "queueId"`,
    [domain],
  );
  const queueIds = [...new Set(deleted.rows.map((row) => row.queueId))];
  await db.query(
    `DELETE FROM messages m WHERE m.id = ANY($1)
       AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id)`,
    [queueIds],
  );
  return { recipients: deleted.rows.length, queueIds };
}

/** Describes the change of one setting for a domain's history, or returns undefined when it is unchanged. */
function describeChange(name: string, before: unknown, after: unknown): string | undefined {
  const from = JSON.stringify(before);
  const to = JSON.stringify(after);
  return from === to ? undefined : `${name}: ${from} -> ${to}`;
}

/**
 * Changes a domain's settings and records the change in its history, in one transaction.
 * Returns undefined when the domain is not registered. A request that changes nothing records
 * no event.
 */
export async function updateDomain(
  pool: Pool,
  name: string,
  changes: DomainChanges,
  author: { actor: string; reason: string | null },
): Promise<DomainRow | undefined> {
  return withTransaction(pool, async (client) => {
    const current = await client.query<DomainRow>(
      `SELECT ${DOMAIN_COLUMNS} FROM domains WHERE name = $1 FOR UPDATE`,
      [name],
    );
    const before = current.rows[0];
    if (!before) {
      return undefined;
    }
    const result = await client.query<DomainRow>(
      `UPDATE domains SET
         primary_hosts = COALESCE($2, primary_hosts),
         recipient_check = COALESCE($3, recipient_check),
         local_part_case_sensitive = COALESCE($4, local_part_case_sensitive),
         greylist = COALESCE($5, greylist),
         updated_at = now()
       WHERE name = $1 RETURNING ${DOMAIN_COLUMNS}`,
      [
        name,
        changes.primaryHosts ?? null,
        changes.recipientCheck ?? null,
        changes.localPartCaseSensitive ?? null,
        changes.greylist ?? null,
      ],
    );
    const after = result.rows[0] as DomainRow;
    const detail = [
      describeChange('primaryHosts', before.primaryHosts, after.primaryHosts),
      describeChange('recipientCheck', before.recipientCheck, after.recipientCheck),
      describeChange(
        'localPartCaseSensitive',
        before.localPartCaseSensitive,
        after.localPartCaseSensitive,
      ),
      describeChange('greylist', before.greylist, after.greylist),
    ].filter((line) => line !== undefined);
    if (detail.length > 0) {
      await insertDomainEvent(client, {
        domain: name,
        actor: author.actor,
        action: 'change',
        fromState: after.state,
        toState: after.state,
        reason: author.reason,
        detail: detail.join('; '),
      });
    }
    return after;
  });
}
