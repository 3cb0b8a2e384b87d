import type { DomainState, RecipientCheck } from '@secondary-mx/contracts';
import type { Pool, Queryable } from './connection.ts';

export interface DomainRow {
  name: string;
  memberNumber: string;
  state: DomainState;
  /** Email address of the member's contact, from the request. */
  contact: string | null;
  note: string | null;
  primaryHosts: string[];
  recipientCheck: RecipientCheck;
  localPartCaseSensitive: boolean;
  greylist: boolean;
  requestedAt: Date;
  approvedAt: Date | null;
  updatedAt: Date;
}

export const DOMAIN_COLUMNS = `name, member_number AS "memberNumber", state, contact, note,
  primary_hosts AS "primaryHosts",
  recipient_check AS "recipientCheck", local_part_case_sensitive AS "localPartCaseSensitive", greylist,
  requested_at AS "requestedAt", approved_at AS "approvedAt", updated_at AS "updatedAt"`;

export interface NewDomain {
  name: string;
  memberNumber: string;
  contact: string | null;
  note: string | null;
}

/** Inserts a pending domain; returns undefined when the domain is already registered. */
export async function insertDomain(
  db: Queryable,
  domain: NewDomain,
): Promise<DomainRow | undefined> {
  const result = await db.query<DomainRow>(
    `INSERT INTO domains (name, member_number, contact, note) VALUES ($1, $2, $3, $4)
     ON CONFLICT (name) DO NOTHING RETURNING ${DOMAIN_COLUMNS}`,
    [domain.name, domain.memberNumber, domain.contact, domain.note],
  );
  return result.rows[0];
}

export async function getDomain(db: Queryable, name: string): Promise<DomainRow | undefined> {
  const result = await db.query<DomainRow>(
    `SELECT ${DOMAIN_COLUMNS} FROM domains WHERE name = $1`,
    [name],
  );
  return result.rows[0];
}

export async function listDomains(pool: Pool, state?: DomainState): Promise<DomainRow[]> {
  const result = await pool.query<DomainRow>(
    `SELECT ${DOMAIN_COLUMNS} FROM domains WHERE ($1::domain_state IS NULL OR state = $1) ORDER BY name`,
    [state ?? null],
  );
  return result.rows;
}

/** The settings of a domain that an administrator may change; absent fields stay as they are. */
export interface DomainChanges {
  primaryHosts?: string[];
  recipientCheck?: RecipientCheck;
  localPartCaseSensitive?: boolean;
  greylist?: boolean;
}

/** Applies the given changes; returns undefined when the domain is not registered. */
export async function listDomainNames(pool: Pool, state: DomainState): Promise<string[]> {
  const result = await pool.query<{ name: string }>(
    'SELECT name FROM domains WHERE state = $1 ORDER BY name',
    [state],
  );
  return result.rows.map((row) => row.name);
}

/** Returns the next-hop override of each named domain; domains without one are left out. */
export async function primaryHostsByDomain(
  pool: Pool,
  names: string[],
): Promise<Map<string, string[]>> {
  const result = await pool.query<{ name: string; primaryHosts: string[] }>(
    `SELECT name, primary_hosts AS "primaryHosts" FROM domains
     WHERE name = ANY($1) AND cardinality(primary_hosts) > 0`,
    [names],
  );
  return new Map(result.rows.map((row) => [row.name, row.primaryHosts]));
}
