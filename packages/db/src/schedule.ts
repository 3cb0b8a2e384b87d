/**
 * Leasing of due recipients to delivery workers, as jobs: each job holds up to
 * `messagesPerJob` messages for one destination domain and is delivered over one SMTP
 * connection. A lease marks recipients `active` until `lease_until`.
 *
 * At most `jobsPerDomain` jobs of one domain are leased at a time, which bounds the
 * connections to its next hop across all workers. Lease passes of several queue-store
 * replicas run one at a time under a transaction-level advisory lock, so the count of jobs in
 * flight is exact; `FOR UPDATE SKIP LOCKED` also keeps them from leasing a recipient twice.
 */
import { randomUUID } from 'node:crypto';
import { type Pool, type Queryable, withTransaction } from './connection.ts';

export interface LeasedRecipient {
  id: string;
  address: string;
  notify: string[] | null;
  orcpt: string | null;
}

export interface LeasedMessage {
  queueId: string;
  sender: string;
  ret: 'FULL' | 'HDRS' | null;
  envid: string | null;
  bodyType: string;
  smtpUtf8: boolean;
  size: number;
  recipients: LeasedRecipient[];
}

/** Messages for one domain, leased together: one delivery job. */
export interface LeasedJob {
  leaseId: string;
  leaseUntil: Date;
  domain: string;
  messages: LeasedMessage[];
}

export interface LeaseOptions {
  /** Most recipients looked at in one call. */
  limit: number;
  leaseMs: number;
  /** Most message bytes leased in one call, so one pass never loads the whole spool. */
  maxBytes: number;
  messagesPerJob: number;
  jobsPerDomain: number;
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

/** Any constant shared by all replicas: the key of the lease-pass advisory lock. */
const LEASE_LOCK_KEY = 0x6d78_7363;

/**
 * Puts recipients whose lease ran out back into the queue: their worker vanished or is too
 * slow. Returns how many were put back.
 */
export async function reclaimExpiredLeases(db: Queryable): Promise<number> {
  const result = await db.query(
    `UPDATE recipients SET state = 'deferred', lease_id = NULL, lease_until = NULL,
            next_attempt_at = now()
     WHERE state = 'active' AND lease_until < now()`,
  );
  return result.rowCount ?? 0;
}

/**
 * Defers the due recipients of destinations whose next hop is being probed until shortly after
 * the next probe, without a connection attempt each, as Postfix does for a dead destination.
 * They take the destination's reason as their last reply, for delay warnings and bounces. A
 * successful probe or delivery makes them due at once (markReachable).
 */
async function suspendUnreachable(db: Queryable): Promise<void> {
  await db.query(
    `UPDATE recipients r SET state = 'deferred', last_failure_kind = 'connection',
            next_attempt_at = p.next_probe_at + make_interval(secs => p.interval_ms / 1000.0),
            last_reply = COALESCE(p.last_reply, r.last_reply),
            remote_mta = COALESCE(p.remote_mta, r.remote_mta)
     FROM destination_probes p
     WHERE r.domain = p.domain AND r.state IN ('queued', 'deferred')
       AND r.next_attempt_at <= now()`,
  );
}

/** Leases due recipients, oldest first, as jobs grouped by domain. */
export async function leaseDueJobs(pool: Pool, options: LeaseOptions): Promise<LeasedJob[]> {
  return withTransaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock($1)', [LEASE_LOCK_KEY]);
    const inFlight = await client.query<{ domain: string; jobs: number }>(
      `SELECT domain, count(DISTINCT lease_id)::int AS jobs FROM recipients
       WHERE state = 'active' GROUP BY domain`,
    );
    const jobsInFlight = new Map(inFlight.rows.map((row) => [row.domain, row.jobs]));
    await suspendUnreachable(client);
    const full = [...jobsInFlight].filter(([, jobs]) => jobs >= options.jobsPerDomain);
    const due = await client.query<DueRow>(
      `SELECT r.id, r.message_id AS "messageId", r.address, r.domain, r.notify, r.orcpt,
              m.sender, m.ret, m.envid, m.body_type AS "bodyType", m.smtp_utf8 AS "smtpUtf8", m.size
       FROM recipients r JOIN messages m ON m.id = r.message_id
       WHERE r.state IN ('queued', 'deferred') AND r.next_attempt_at <= now()
         AND r.domain <> ALL($2::text[])
       ORDER BY r.next_attempt_at, r.id
       LIMIT $1
       FOR UPDATE OF r SKIP LOCKED`,
      [options.limit, full.map(([domain]) => domain)],
    );
    const jobs = groupIntoJobs(due.rows, jobsInFlight, options);
    if (jobs.length === 0) {
      return [];
    }
    const ids: string[] = [];
    const leaseIds: string[] = [];
    for (const job of jobs) {
      for (const message of job.messages) {
        for (const recipient of message.recipients) {
          ids.push(recipient.id);
          leaseIds.push(job.leaseId);
        }
      }
    }
    const leaseUntil = new Date(Date.now() + options.leaseMs);
    await client.query(
      `UPDATE recipients r SET state = 'active', lease_id = l.lease_id, lease_until = $3
       FROM unnest($1::bigint[], $2::uuid[]) AS l(id, lease_id)
       WHERE r.id = l.id`,
      [ids, leaseIds, leaseUntil],
    );
    for (const job of jobs) {
      job.leaseUntil = leaseUntil;
    }
    return jobs;
  });
}

interface DomainBatch {
  jobs: LeasedJob[];
  slots: number;
  messages: Map<string, LeasedMessage>;
}

/**
 * Packs due rows into jobs in their order: the recipients of one message and domain go into
 * one message entry, messages fill the domain's open job up to messagesPerJob, and a domain
 * opens new jobs only while it has free slots. Rows that do not fit stay due for a later pass.
 */
function groupIntoJobs(
  rows: DueRow[],
  jobsInFlight: Map<string, number>,
  options: LeaseOptions,
): LeasedJob[] {
  const batches = new Map<string, DomainBatch>();
  const jobs: LeasedJob[] = [];
  let bytes = 0;
  for (const row of rows) {
    let batch = batches.get(row.domain);
    if (!batch) {
      batch = {
        jobs: [],
        slots: options.jobsPerDomain - (jobsInFlight.get(row.domain) ?? 0),
        messages: new Map(),
      };
      batches.set(row.domain, batch);
    }
    const recipient = { id: row.id, address: row.address, notify: row.notify, orcpt: row.orcpt };
    const known = batch.messages.get(row.messageId);
    if (known) {
      known.recipients.push(recipient);
      continue;
    }
    let job = batch.jobs.at(-1);
    if (!job || job.messages.length >= options.messagesPerJob) {
      if (batch.slots <= 0) {
        continue;
      }
      job = { leaseId: randomUUID(), leaseUntil: new Date(0), domain: row.domain, messages: [] };
      batch.jobs.push(job);
      jobs.push(job);
      batch.slots -= 1;
    }
    // The first message always goes, however large, so nothing can starve behind the budget.
    if (bytes > 0 && bytes + row.size > options.maxBytes) {
      continue;
    }
    bytes += row.size;
    const message: LeasedMessage = {
      queueId: row.messageId,
      sender: row.sender,
      ret: row.ret,
      envid: row.envid,
      bodyType: row.bodyType,
      smtpUtf8: row.smtpUtf8,
      size: row.size,
      recipients: [recipient],
    };
    job.messages.push(message);
    batch.messages.set(row.messageId, message);
  }
  return jobs.filter((job) => job.messages.length > 0);
}

/** Returns the stored bytes of the named messages; a message without bytes is left out. */
export async function loadBodies(db: Queryable, queueIds: string[]): Promise<Map<string, Buffer>> {
  const result = await db.query<{ id: string; body: Buffer }>(
    'SELECT id, body FROM messages WHERE id = ANY($1) AND body IS NOT NULL',
    [queueIds],
  );
  return new Map(result.rows.map((row) => [row.id, row.body]));
}

/**
 * Hands a lease back without an attempt, for example when its job could not be published.
 * The recipients become due again after delayMs.
 */
export async function releaseLease(db: Queryable, leaseId: string, delayMs: number): Promise<void> {
  await db.query(
    `UPDATE recipients SET state = 'deferred', lease_id = NULL, lease_until = NULL,
            next_attempt_at = now() + make_interval(secs => $2)
     WHERE lease_id = $1 AND state = 'active'`,
    [leaseId, delayMs / 1000],
  );
}
