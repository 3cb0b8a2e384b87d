/**
 * Narrowing of SPF records (RFC 7208), used to tell whether an SPF pass came from a mechanism
 * that names specific hosts. mailauth 4.9 reports the result but not the mechanism that matched,
 * so the check evaluates the record a second time with every pass term that matches too widely
 * turned into a neutral (`?`) one. The terms keep their order, so the second evaluation passes
 * only when a specific term authorizes the client before any wide term matches. An `include`
 * whose record passed only through a wide term no longer matches, and the evaluation goes on to
 * the next term, as after any include whose record does not pass.
 *
 * Specific: `ip4` and `ip6` with a prefix of at least /16 and /32, `a` and `mx` whose CIDR
 * lengths are at least those, and `include` and `redirect`, whose records are narrowed in turn.
 * Too wide: `all`, `exists` (which a wildcard record can make match every address), `ptr`, and
 * any network shorter than those prefixes.
 */

/** The shortest IPv4 prefix whose network still counts as specific hosts. */
export const MIN_SPECIFIC_IPV4_PREFIX = 16;
/** The shortest IPv6 prefix whose network still counts as specific hosts. */
export const MIN_SPECIFIC_IPV6_PREFIX = 32;

/**
 * Returns a TXT answer (as dns.promises.resolve returns it) with each SPF record narrowed.
 * Answers of any other shape are returned as they are.
 */
export function narrowTxtAnswer(answer: unknown): unknown {
  if (!Array.isArray(answer)) {
    return answer;
  }
  return answer.map((row: unknown) => {
    if (!Array.isArray(row)) {
      return row;
    }
    const text = row.join('');
    const terms = text.trim().split(/\s+/);
    if (terms[0]?.toLowerCase() !== 'v=spf1') {
      return row;
    }
    return [narrowSpfRecord(terms)];
  });
}

/** Returns the record of `terms` (`v=spf1` first) with each too wide pass term made neutral. */
function narrowSpfRecord(terms: string[]): string {
  return terms
    .map((term, index) => (index > 0 && isWidePass(term) ? `?${unqualified(term)}` : term))
    .join(' ');
}

function unqualified(term: string): string {
  return /^[+?~-]/.test(term) ? term.slice(1) : term;
}

function isWidePass(term: string): boolean {
  // Modifiers (`redirect=`, `exp=`) and terms that do not pass are left alone.
  if (/^[a-z][a-z0-9_.-]*=/i.test(term) || /^[?~-]/.test(term)) {
    return false;
  }
  const body = unqualified(term);
  const separator = body.search(/[:/]/);
  const mechanism = (separator === -1 ? body : body.slice(0, separator)).toLowerCase();
  const value = separator === -1 ? '' : body.slice(separator);
  const cidr = /(?:\/(\d+))?(?:\/\/(\d+))?$/.exec(value);
  const first = cidr?.[1] === undefined ? undefined : Number(cidr[1]);
  const second = cidr?.[2] === undefined ? undefined : Number(cidr[2]);

  switch (mechanism) {
    case 'include':
      return false;
    case 'ip4':
      return (first ?? 32) < MIN_SPECIFIC_IPV4_PREFIX;
    case 'ip6':
      return (first ?? 128) < MIN_SPECIFIC_IPV6_PREFIX;
    case 'a':
    case 'mx':
      return (first ?? 32) < MIN_SPECIFIC_IPV4_PREFIX || (second ?? 128) < MIN_SPECIFIC_IPV6_PREFIX;
    default:
      return true;
  }
}
