/**
 * Rejects requests with a NUL character (U+0000) in any string of the body, query or path.
 * PostgreSQL text cannot store it, so such a note, reason or filter would otherwise fail inside
 * a query and come back as a 500 instead of a 400 that names the field.
 */
import type { preValidationAsyncHookHandler } from 'fastify';
import { errorBody } from './errors.ts';

/** Returns the path of the first string under `value` that contains U+0000, such as `body/note`. */
export function findNulCharacter(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') {
    return value.includes('\u0000') ? path : undefined;
  }
  if (value === null || typeof value !== 'object') {
    return undefined;
  }
  for (const [key, item] of Object.entries(value)) {
    const found = findNulCharacter(item, `${path}/${key}`);
    if (found !== undefined) {
      return found;
    }
  }
  return undefined;
}

/** A preValidation hook that replies 400 naming the field that contains U+0000. */
export const rejectNulCharacters: preValidationAsyncHookHandler = async (request, reply) => {
  const parts: [string, unknown][] = [
    ['params', request.params],
    ['querystring', request.query],
    ['body', request.body],
  ];
  for (const [name, value] of parts) {
    const path = findNulCharacter(value, name);
    if (path !== undefined) {
      return reply
        .code(400)
        .send(errorBody(400, `${path} must not contain a NUL character (U+0000)`));
    }
  }
};
