/**
 * Recipient-list entries of member domains. An entry is a whole address (`alice@example.org`)
 * or a local-part pattern ending in `@` (`postmaster@`, `sales-*@`, `*@`), in which `*` matches
 * any run of characters, including none. Entries are stored as their local part alone.
 *
 * NOTE: `*` is also a legal atext character (RFC 5322), so a local part that contains a literal
 * `*` can only be listed through a pattern that matches it.
 */
import { normalizeDomain } from './index.ts';

export class RecipientPatternError extends Error {
  override name = 'RecipientPatternError';
}

/** atext of RFC 5322 without the routing characters `!` and `%`, plus the dot. */
const PATTERN_CHAR = /^[a-z0-9#$&'*+/=?^_`{|}~.-]$/i;

/**
 * Parses an entry of `domain`'s list and returns its local-part pattern. Throws a
 * RecipientPatternError that names the problem when the entry is invalid or belongs to
 * another domain.
 */
export function parseRecipientEntry(entry: string, domain: string): string {
  const trimmed = entry.trim();
  const at = trimmed.lastIndexOf('@');
  if (at < 0) {
    throw new RecipientPatternError(
      `"${entry}" has no @: write an address (alice@${domain}) or a local-part pattern (alice@, sales-*@, *@)`,
    );
  }
  const localPart = trimmed.slice(0, at);
  const domainText = trimmed.slice(at + 1);
  if (domainText !== '' && normalizeDomain(domainText) !== domain) {
    throw new RecipientPatternError(`"${entry}" is not an address of ${domain}`);
  }
  if (localPart === '') {
    throw new RecipientPatternError(`"${entry}" has an empty local part`);
  }
  if (Buffer.byteLength(localPart) > 64) {
    throw new RecipientPatternError(`"${entry}" has a local part longer than 64 octets`);
  }
  if (localPart.startsWith('"')) {
    throw new RecipientPatternError(`"${entry}" has a quoted local part, which lists do not take`);
  }
  const dotsValid =
    !localPart.startsWith('.') && !localPart.endsWith('.') && !localPart.includes('..');
  const charsValid = [...localPart].every(
    (char) => char.charCodeAt(0) > 0x7f || PATTERN_CHAR.test(char),
  );
  if (!dotsValid || !charsValid) {
    throw new RecipientPatternError(
      `"${entry}" has an invalid local part: use letters, digits, dots (not first, last or doubled), ${"#$&'+/=?^_`{|}~-"} and * as the wildcard`,
    );
  }
  return localPart;
}

/** Formats a stored local-part pattern as the list entry shown to administrators. */
export function formatRecipientEntry(localPart: string, domain: string): string {
  return `${localPart}@${domain}`;
}

/**
 * Matches text against a pattern where `*` stands for any run of characters. It goes back only
 * to the last `*`, so the time is O(pattern × text) where a regular expression could take
 * exponential time on patterns such as `*a*a*a*b`.
 */
function matchesWildcard(pattern: readonly string[], text: readonly string[]): boolean {
  let p = 0;
  let t = 0;
  let star = -1;
  let resume = 0;
  while (t < text.length) {
    if (p < pattern.length && pattern[p] !== '*' && pattern[p] === text[t]) {
      p++;
      t++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      resume = t;
    } else if (star >= 0) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') {
    p++;
  }
  return p === pattern.length;
}

/** Returns a test for local parts that match any of the patterns. */
export function compileRecipientList(
  patterns: readonly string[],
  caseSensitive: boolean,
): (localPart: string) => boolean {
  const fold = (text: string) => (caseSensitive ? text : text.toLowerCase());
  const exact = new Set<string>();
  const wildcards: string[][] = [];
  for (const pattern of patterns) {
    if (pattern.includes('*')) {
      wildcards.push([...fold(pattern)]);
    } else {
      exact.add(fold(pattern));
    }
  }
  return (localPart) => {
    const folded = fold(localPart);
    if (exact.has(folded)) {
      return true;
    }
    const characters = [...folded];
    return wildcards.some((wildcard) => matchesWildcard(wildcard, characters));
  };
}

/** RFC 5321 section 4.5.1: `postmaster` must be accepted, and its case does not matter. */
export function isPostmaster(localPart: string): boolean {
  return localPart.toLowerCase() === 'postmaster';
}
