import type { Pool, Queryable } from './connection.ts';

export type TokenRole = 'admin' | 'member';

export interface TokenRow {
  id: string;
  secretSha256: Buffer;
  role: TokenRole;
  domain: string | null;
  note: string | null;
  createdBy: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

const TOKEN_COLUMNS = `id, secret_sha256 AS "secretSha256", role, domain, note, created_by AS "createdBy",
  created_at AS "createdAt", last_used_at AS "lastUsedAt", revoked_at AS "revokedAt"`;

export interface NewToken {
  id: string;
  secretSha256: Buffer;
  role: TokenRole;
  domain: string | null;
  note: string | null;
  createdBy: string;
}

/** Inserts a token; returns undefined when its member domain is not registered. */
export async function insertToken(db: Queryable, token: NewToken): Promise<TokenRow | undefined> {
  const result = await db.query<TokenRow>(
    `INSERT INTO api_tokens (id, secret_sha256, role, domain, note, created_by)
     SELECT $1, $2, $3, $4, $5, $6
     WHERE $4::text IS NULL OR EXISTS (SELECT 1 FROM domains WHERE name = $4)
     RETURNING ${TOKEN_COLUMNS}`,
    [token.id, token.secretSha256, token.role, token.domain, token.note, token.createdBy],
  );
  return result.rows[0];
}

/** Returns the token with the given id unless it was revoked. */
export async function getActiveToken(pool: Pool, id: string): Promise<TokenRow | undefined> {
  const result = await pool.query<TokenRow>(
    `SELECT ${TOKEN_COLUMNS} FROM api_tokens WHERE id = $1 AND revoked_at IS NULL`,
    [id],
  );
  return result.rows[0];
}

/** Records a use of the token, at most once a minute so that busy clients cost no writes. */
export async function touchToken(pool: Pool, id: string): Promise<void> {
  await pool.query(
    `UPDATE api_tokens SET last_used_at = now()
     WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`,
    [id],
  );
}

/** Counts the member tokens of a domain that were not revoked. */
export async function countActiveMemberTokens(db: Queryable, domain: string): Promise<number> {
  const result = await db.query<{ count: number }>(
    `SELECT count(*)::int AS count FROM api_tokens
     WHERE role = 'member' AND domain = $1 AND revoked_at IS NULL`,
    [domain],
  );
  return result.rows[0]?.count ?? 0;
}

/** Lists tokens, newest first, optionally only those of one member domain. */
export async function listTokens(pool: Pool, domain?: string): Promise<TokenRow[]> {
  const result = await pool.query<TokenRow>(
    `SELECT ${TOKEN_COLUMNS} FROM api_tokens WHERE ($1::text IS NULL OR domain = $1)
     ORDER BY created_at DESC, id`,
    [domain ?? null],
  );
  return result.rows;
}

export async function getToken(pool: Pool, id: string): Promise<TokenRow | undefined> {
  const result = await pool.query<TokenRow>(
    `SELECT ${TOKEN_COLUMNS} FROM api_tokens WHERE id = $1`,
    [id],
  );
  return result.rows[0];
}

/** Marks a token revoked; returns the row, or undefined when no token has that id. */
export async function revokeToken(pool: Pool, id: string): Promise<TokenRow | undefined> {
  const result = await pool.query<TokenRow>(
    `UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1
     RETURNING ${TOKEN_COLUMNS}`,
    [id],
  );
  return result.rows[0];
}
