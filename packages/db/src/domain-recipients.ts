/**
 * The recipient lists of member domains and the per-domain policy that ingress loads with the
 * approved domains. List entries are local-part patterns ('alice', 'sales-*', '*'), stored as
 * the administrator entered them.
 */
import type { DomainPolicy } from '@secondary-mx/contracts';
import { type Pool, withTransaction } from './connection.ts';

/** Returns the domain's list in alphabetical order, or undefined when it is not registered. */
export async function listDomainRecipients(
  pool: Pool,
  domain: string,
): Promise<string[] | undefined> {
  const result = await pool.query<{ localPart: string | null }>(
    `SELECT r.local_part AS "localPart" FROM domains d
     LEFT JOIN domain_recipients r ON r.domain = d.name
     WHERE d.name = $1 ORDER BY r.local_part`,
    [domain],
  );
  if (result.rows.length === 0) {
    return undefined;
  }
  return result.rows.flatMap((row) => (row.localPart === null ? [] : [row.localPart]));
}

/**
 * Replaces the domain's list in one transaction. Returns false when the domain is not
 * registered.
 */
export async function replaceDomainRecipients(
  pool: Pool,
  domain: string,
  localParts: readonly string[],
): Promise<boolean> {
  return withTransaction(pool, async (client) => {
    const found = await client.query('SELECT 1 FROM domains WHERE name = $1 FOR UPDATE', [domain]);
    if (found.rowCount === 0) {
      return false;
    }
    await client.query('DELETE FROM domain_recipients WHERE domain = $1', [domain]);
    await client.query(
      `INSERT INTO domain_recipients (domain, local_part)
       SELECT $1, entry FROM unnest($2::text[]) AS entry ON CONFLICT DO NOTHING`,
      [domain, localParts],
    );
    return true;
  });
}

export type AddRecipientOutcome = 'added' | 'exists' | 'full' | 'unknown-domain';

/** Adds one entry unless the list already has `maxEntries` entries. */
export async function addDomainRecipient(
  pool: Pool,
  domain: string,
  localPart: string,
  maxEntries: number,
): Promise<AddRecipientOutcome> {
  return withTransaction(pool, async (client) => {
    // The row lock serializes additions to one list, so the count check cannot be raced.
    const found = await client.query('SELECT 1 FROM domains WHERE name = $1 FOR UPDATE', [domain]);
    if (found.rowCount === 0) {
      return 'unknown-domain';
    }
    const counted = await client.query<{ count: string }>(
      'SELECT count(*) FROM domain_recipients WHERE domain = $1',
      [domain],
    );
    if (Number(counted.rows[0]?.count) >= maxEntries) {
      return 'full';
    }
    const inserted = await client.query(
      `INSERT INTO domain_recipients (domain, local_part) VALUES ($1, $2)
       ON CONFLICT DO NOTHING`,
      [domain, localPart],
    );
    return inserted.rowCount === 1 ? 'added' : 'exists';
  });
}

/** Removes one entry; returns whether it was there. */
export async function removeDomainRecipient(
  pool: Pool,
  domain: string,
  localPart: string,
): Promise<boolean> {
  const result = await pool.query(
    'DELETE FROM domain_recipients WHERE domain = $1 AND local_part = $2',
    [domain, localPart],
  );
  return result.rowCount === 1;
}

/** Returns the policy of every approved domain, recipient lists included, by domain name. */
export async function approvedDomainPolicies(pool: Pool): Promise<Record<string, DomainPolicy>> {
  const result = await pool.query<DomainPolicy & { name: string }>(
    `SELECT d.name, d.recipient_check AS "recipientCheck",
       d.local_part_case_sensitive AS "localPartCaseSensitive", d.greylist,
       d.primary_hosts AS "primaryHosts",
       COALESCE(array_agg(r.local_part ORDER BY r.local_part)
         FILTER (WHERE r.local_part IS NOT NULL), '{}') AS recipients
     FROM domains d LEFT JOIN domain_recipients r ON r.domain = d.name
     WHERE d.state = 'approved'
     GROUP BY d.name ORDER BY d.name`,
  );
  const policies: Record<string, DomainPolicy> = {};
  for (const { name, ...policy } of result.rows) {
    policies[name] = policy;
  }
  return policies;
}
