/**
 * Leasing of due recipients to delivery workers. A lease marks recipients `active` until
 * `lease_until`; `FOR UPDATE SKIP LOCKED` lets several queue-store replicas lease at once
 * without ever handing the same recipient out twice.
 */
import { randomUUID } from 'node:crypto';
import type { Pool } from './connection.ts';

export interface LeasedRecipient {
  id: string;
  address: string;
  notify: string[] | null;
  orcpt: string | null;
}

/** Recipients of one message and domain, leased together: one delivery job. */
export interface LeasedGroup {
  leaseId: string;
  leaseUntil: Date;
  queueId: string;
  domain: string;
  sender: string;
  ret: 'FULL' | 'HDRS' | null;
  envid: string | null;
  bodyType: string;
  smtpUtf8: boolean;
  size: number;
  recipients: LeasedRecipient[];
}

export interface LeaseOptions {
  /** Most recipients leased in one call. */
  limit: number;
  leaseMs: number;
  /** Most message bytes leased in one call, so one pass never loads the whole spool. */
  maxBytes: number;
}

interface DueRow {
  id: string;
  messageId: string;
  address: string;
  domain: string;
  notify: string[] | null;
  orcpt: string | null;
  sender: string;
  ret: 'FULL' | 'HDRS' | null;
  envid: string | null;
  bodyType: string;
  smtpUtf8: boolean;
  size: number;
}

/**
 * Puts recipients whose lease ran out back into the queue: their worker vanished or is too
 * slow. Returns how many were put back.
 */
export async function reclaimExpiredLeases(pool: Pool): Promise<number> {
  const result = await pool.query(
    `UPDATE recipients SET state = 'deferred', lease_id = NULL, lease_until = NULL,
            next_attempt_at = now()
     WHERE state = 'active' AND lease_until < now()`,
  );
  return result.rowCount ?? 0;
}

/** Leases due recipients, oldest first, grouped by message and domain. */
export async function leaseDueRecipients(
  pool: Pool,
  options: LeaseOptions,
): Promise<LeasedGroup[]> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const due = await client.query<DueRow>(
      `SELECT r.id, r.message_id AS "messageId", r.address, r.domain, r.notify, r.orcpt,
              m.sender, m.ret, m.envid, m.body_type AS "bodyType", m.smtp_utf8 AS "smtpUtf8", m.size
       FROM recipients r JOIN messages m ON m.id = r.message_id
       WHERE r.state IN ('queued', 'deferred') AND r.next_attempt_at <= now()
       ORDER BY r.next_attempt_at, r.id
       LIMIT $1
       FOR UPDATE OF r SKIP LOCKED`,
      [options.limit],
    );
    const groups = groupDueRows(due.rows, options);
    if (groups.length === 0) {
      await client.query('COMMIT');
      return [];
    }
    const ids: string[] = [];
    const leaseIds: string[] = [];
    for (const group of groups) {
      for (const recipient of group.recipients) {
        ids.push(recipient.id);
        leaseIds.push(group.leaseId);
      }
    }
    const leaseUntil = new Date(Date.now() + options.leaseMs);
    await client.query(
      `UPDATE recipients r SET state = 'active', lease_id = l.lease_id, lease_until = $3
       FROM unnest($1::bigint[], $2::uuid[]) AS l(id, lease_id)
       WHERE r.id = l.id`,
      [ids, leaseIds, leaseUntil],
    );
    await client.query('COMMIT');
    for (const group of groups) {
      group.leaseUntil = leaseUntil;
    }
    return groups;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

function groupDueRows(rows: DueRow[], options: LeaseOptions): LeasedGroup[] {
  const groups = new Map<string, LeasedGroup>();
  let bytes = 0;
  for (const row of rows) {
    const key = `${row.messageId}\u0000${row.domain}`;
    let group = groups.get(key);
    if (!group) {
      // The first group always goes, however large its message, so nothing can starve.
      if (groups.size > 0 && bytes + row.size > options.maxBytes) {
        continue;
      }
      bytes += row.size;
      group = {
        leaseId: randomUUID(),
        leaseUntil: new Date(0),
        queueId: row.messageId,
        domain: row.domain,
        sender: row.sender,
        ret: row.ret,
        envid: row.envid,
        bodyType: row.bodyType,
        smtpUtf8: row.smtpUtf8,
        size: row.size,
        recipients: [],
      };
      groups.set(key, group);
    }
    group.recipients.push({
      id: row.id,
      address: row.address,
      notify: row.notify,
      orcpt: row.orcpt,
    });
  }
  return [...groups.values()];
}

/** Returns the stored bytes of the named messages; a message without bytes is left out. */
export async function loadBodies(pool: Pool, queueIds: string[]): Promise<Map<string, Buffer>> {
  const result = await pool.query<{ id: string; body: Buffer }>(
    'SELECT id, body FROM messages WHERE id = ANY($1) AND body IS NOT NULL',
    [queueIds],
  );
  return new Map(result.rows.map((row) => [row.id, row.body]));
}

/**
 * Hands a lease back without an attempt, for example when its job could not be published.
 * The recipients become due again after delayMs.
 */
export async function releaseLease(pool: Pool, leaseId: string, delayMs: number): Promise<void> {
  await pool.query(
    `UPDATE recipients SET state = 'deferred', lease_id = NULL, lease_until = NULL,
            next_attempt_at = now() + make_interval(secs => $2)
     WHERE lease_id = $1 AND state = 'active'`,
    [leaseId, delayMs / 1000],
  );
}
