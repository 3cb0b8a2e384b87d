/**
 * Bearer tokens of the /api routes. MX_ADMIN_TOKEN and stored 'admin' tokens can do everything;
 * a stored 'member' token acts only on its own domain. Stored tokens have the form
 * `smx_<32 hex digits of the id>_<secret>`: the id finds the row, and the SHA-256 of the secret
 * is compared with crypto.timingSafeEqual, so the comparison takes the same time whatever the
 * presented secret. Neither a token nor its hash is ever logged.
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { getActiveToken, type Pool, type TokenRole, touchToken } from '@secondary-mx/db';
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { errorBody } from './errors.ts';

/** The caller of a request, identified by its bearer token. */
export type Principal =
  | { role: 'admin'; tokenId: string | null }
  | { role: 'member'; tokenId: string; domain: string };

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
}

const BEARER_PATTERN = /^Bearer[ \t]+(\S+)[ \t]*$/i;
const STORED_TOKEN_PATTERN = /^smx_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$/;

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** Returns the author recorded for a change: `admin` for MX_ADMIN_TOKEN, else `token:<id>`. */
export function actorOf(principal: Principal): string {
  return principal.tokenId === null ? 'admin' : `token:${principal.tokenId}`;
}

export interface IssuedToken {
  id: string;
  /** The bearer token, shown once: only its hash is stored. */
  token: string;
  secretSha256: Buffer;
}

/** Creates the id, bearer token and stored hash of a new token. */
export function issueToken(): IssuedToken {
  const id = randomUUID();
  const secret = randomBytes(32).toString('base64url');
  return { id, token: `smx_${id.replaceAll('-', '')}_${secret}`, secretSha256: sha256(secret) };
}

function uuidOf(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// Compared when no stored token matches the id, so unknown and wrong tokens take equal time.
const UNKNOWN_SECRET_SHA256 = sha256(randomBytes(32).toString('base64url'));

async function resolveStoredToken(pool: Pool, presented: string): Promise<Principal | undefined> {
  const match = STORED_TOKEN_PATTERN.exec(presented);
  if (!match?.[1] || !match[2]) {
    return undefined;
  }
  const row = await getActiveToken(pool, uuidOf(match[1]));
  const expected = row?.secretSha256 ?? UNKNOWN_SECRET_SHA256;
  if (!timingSafeEqual(sha256(match[2]), expected) || !row) {
    return undefined;
  }
  await touchToken(pool, row.id);
  if (row.role === 'member' && row.domain !== null) {
    return { role: 'member', tokenId: row.id, domain: row.domain };
  }
  return { role: 'admin', tokenId: row.id };
}

/**
 * Creates an onRequest hook that sets request.principal, or replies 401 unless the request
 * carries MX_ADMIN_TOKEN or a stored token that was not revoked.
 */
export function bearerAuth(adminToken: string, pool: Pool): onRequestAsyncHookHandler {
  const expected = sha256(adminToken);

  return async (request, reply) => {
    const header = request.headers.authorization;
    if (header === undefined) {
      request.log.info('request without an Authorization header rejected');
      return reply
        .code(401)
        .header('WWW-Authenticate', 'Bearer realm="secondary-mx"')
        .send(errorBody(401, 'missing bearer token: send Authorization: Bearer <token>'));
    }

    const presented = BEARER_PATTERN.exec(header)?.[1];
    if (presented !== undefined && timingSafeEqual(sha256(presented), expected)) {
      request.principal = { role: 'admin', tokenId: null };
      return;
    }
    const principal =
      presented === undefined ? undefined : await resolveStoredToken(pool, presented);
    if (!principal) {
      request.log.warn('request with an invalid bearer token rejected');
      return reply
        .code(401)
        .header('WWW-Authenticate', 'Bearer realm="secondary-mx", error="invalid_token"')
        .send(errorBody(401, 'invalid or revoked bearer token'));
    }
    request.principal = principal;
  };
}

/** Roles a token may have, as stored. */
export const TOKEN_ROLES: readonly TokenRole[] = ['admin', 'member'];

/**
 * A preHandler that replies 403 unless the request comes from an administrator, for routes that
 * members may not use even on their own domain. It replies the same for every domain, so a
 * member learns nothing about which domains exist.
 */
export async function adminOnly(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (request.principal.role !== 'admin') {
    await reply.code(403).send(errorBody(403, 'this route needs an administrator token'));
  }
}

/**
 * Returns true when the request may see the domain. A member token sees only its own domain;
 * for any other the caller replies 404 as for an unregistered domain, so that a member learns
 * nothing about which other domains exist.
 */
export function canAccessDomain(request: FastifyRequest, domain: string): boolean {
  const { principal } = request;
  return principal.role === 'admin' || principal.domain === domain;
}

/** Returns the only domain a member token may see, or undefined for an administrator. */
export function domainScope(request: FastifyRequest): string | undefined {
  const { principal } = request;
  return principal.role === 'member' ? principal.domain : undefined;
}
