/**
 * Bearer token check of the /api routes. Both the expected and the presented token are hashed
 * with SHA-256 before crypto.timingSafeEqual, so the comparison takes the same time whatever
 * the presented token's length or content. The token itself is never logged.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { onRequestAsyncHookHandler } from 'fastify';
import { errorBody } from './errors.ts';

const BEARER_PATTERN = /^Bearer[ \t]+(\S+)[ \t]*$/i;

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** Creates an onRequest hook that replies 401 unless the request carries the given token. */
export function bearerAuth(token: string): onRequestAsyncHookHandler {
  const expected = sha256(token);

  return async (request, reply) => {
    const header = request.headers.authorization;
    if (header === undefined) {
      request.log.info('request without an Authorization header rejected');
      return reply
        .code(401)
        .header('WWW-Authenticate', 'Bearer realm="secondary-mx"')
        .send(errorBody(401, 'missing bearer token: send Authorization: Bearer <MX_ADMIN_TOKEN>'));
    }

    const presented = BEARER_PATTERN.exec(header)?.[1];
    if (presented === undefined || !timingSafeEqual(sha256(presented), expected)) {
      request.log.warn('request with an invalid bearer token rejected');
      return reply
        .code(401)
        .header('WWW-Authenticate', 'Bearer realm="secondary-mx", error="invalid_token"')
        .send(errorBody(401, 'invalid bearer token'));
    }
  };
}
