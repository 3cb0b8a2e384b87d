/**
 * SPF checks (RFC 7208) of the sender domain for client grouping, with mailauth and a resolver
 * that uses DNS_SERVERS when set. A pass groups the client by the sender domain only when it came
 * from a mechanism that names specific hosts (spf-narrowing.ts), because a domain with `+all` or
 * a wide network would otherwise make one group of every client. A check that does not finish
 * within its time limit counts as no pass, so a slow DNS server never delays a verdict past the
 * caller's timeout. Results are cached per client address and sender domain for a minute,
 * because a message with many recipients asks once per recipient.
 */
import { Resolver } from 'node:dns/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { LRUCache } from 'lru-cache';
// The SPF module alone: mailauth's index also loads its BIMI code and an HTTP client.
import { spf } from 'mailauth/lib/spf/index.js';
import { narrowTxtAnswer } from './spf-narrowing.ts';

const CACHE_ENTRIES = 10_000;
const CACHE_TTL_MS = 60_000;

export interface SpfCheckOptions {
  /** `host:port` DNS servers; empty means the system resolver. */
  dnsServers: readonly string[];
  /** Maximum time for one check, in ms, DNS lookups included. */
  timeoutMs: number;
  /** Our host name, which SPF macros (`%{r}`) may expand to. */
  hostname: string;
}

export interface SpfRequest {
  clientAddress: string;
  /** Empty string for the null reverse-path `<>`, which is never checked. */
  sender: string;
  heloName?: string | undefined;
}

/** The SPF result of one check, and the sender domain that groups the client. */
export interface SpfOutcome {
  result: string;
  /**
   * The sender domain when the result is `pass` through a mechanism that names specific hosts,
   * otherwise undefined.
   */
  groupDomain: string | undefined;
}

/** Checks SPF for the sender's domain. The null sender gets result `none` without a lookup. */
export type SpfCheck = (request: SpfRequest) => Promise<SpfOutcome>;

class SpfTimeoutError extends Error {
  override name = 'SpfTimeoutError';
  /** The code node:dns uses for a timeout, which mailauth reports as temperror. */
  readonly code = 'ETIMEOUT';
}

export function createSpfCheck(options: SpfCheckOptions): SpfCheck {
  const resolver = new Resolver({ timeout: options.timeoutMs, tries: 1 });
  if (options.dnsServers.length > 0) {
    resolver.setServers([...options.dnsServers]);
  }
  const cache = new LRUCache<string, SpfOutcome>({ max: CACHE_ENTRIES, ttl: CACHE_TTL_MS });

  return async ({ clientAddress, sender, heloName }) => {
    const at = sender.lastIndexOf('@');
    if (at <= 0) {
      return { result: 'none', groupDomain: undefined };
    }
    const domain = sender.slice(at + 1).toLowerCase();
    const cacheKey = `${clientAddress} ${domain}`;
    const cached = cache.get(cacheKey);
    if (cached) {
      return cached;
    }

    // Lookups after the deadline fail at once, so an evaluation that ran out of time stops.
    // Answers are kept for the check, so the narrowed evaluation queries the DNS server only for
    // names that the first evaluation did not look up.
    const deadline = Date.now() + options.timeoutMs;
    const answers = new Map<string, Promise<unknown>>();
    const resolve = (name: string, type: string): Promise<unknown> => {
      const key = `${type} ${name.toLowerCase()}`;
      let answer = answers.get(key);
      if (answer === undefined) {
        answer =
          Date.now() >= deadline
            ? Promise.reject(new SpfTimeoutError(`SPF check of ${domain} timed out`))
            : resolver.resolve(name, type);
        answers.set(key, answer);
      }
      return answer;
    };
    const resolveNarrowed = async (name: string, type: string): Promise<unknown> => {
      const answer = await resolve(name, type);
      return type === 'TXT' ? narrowTxtAnswer(answer) : answer;
    };

    const evaluate = async (): Promise<SpfOutcome> => {
      const request = { sender, ip: clientAddress, helo: heloName ?? '', mta: options.hostname };
      const checked = await spf({ ...request, resolver: resolve });
      const result = checked.status.result;
      if (result !== 'pass') {
        return { result, groupDomain: undefined };
      }
      const narrowed = await spf({ ...request, resolver: resolveNarrowed });
      const specific = narrowed.status.result === 'pass';
      return { result, groupDomain: specific ? domain : undefined };
    };
    const timer = new AbortController();
    const timedOut = sleep(options.timeoutMs, undefined, { signal: timer.signal }).then(
      (): SpfOutcome => ({ result: 'temperror', groupDomain: undefined }),
    );
    const outcome = await Promise.race([evaluate(), timedOut]).finally(() => timer.abort());

    // A temporary error may clear on the next attempt, so only final results are cached.
    if (outcome.result !== 'temperror') {
      cache.set(cacheKey, outcome);
    }
    return outcome;
  };
}
