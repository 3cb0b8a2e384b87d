/**
 * MX and address lookups against DNS_SERVERS, for the delivery worker's next-hop selection and
 * the admin API's DNS check. Responses are cached for a few seconds so a burst of messages to one
 * domain costs one lookup. Lookups never throw: each returns the records or the kind of failure,
 * which decides between "no such record" and "try again later".
 */
import { Resolver } from 'node:dns/promises';

export interface MxRecord {
  preference: number;
  /** Host name; the empty string is the null MX of RFC 7505. */
  exchange: string;
}

/**
 * `nodata`: the name exists without records of the type (NOERROR, no answers).
 * `nxdomain`: the name does not exist. `failed`: timeout, SERVFAIL or any other error.
 */
export type LookupFailure = 'nodata' | 'nxdomain' | 'failed';

export type LookupResult<T> =
  | { ok: true; records: T[] }
  | { ok: false; failure: LookupFailure; error: string };

export interface DnsLookupOptions {
  /** DNS servers as `host:port`; empty uses the system resolver. */
  servers: readonly string[];
  /** How long a response, or a nodata/nxdomain failure, is cached, in milliseconds. */
  cacheTtlMs?: number;
  /** Time per query attempt, in milliseconds. */
  timeoutMs?: number;
  /** Attempts per query. */
  tries?: number;
}

const DEFAULT_CACHE_TTL_MS = 5000;
const DEFAULT_TIMEOUT_MS = 5000;
const DEFAULT_TRIES = 2;

interface CacheEntry {
  expiresAt: number;
  result: Promise<LookupResult<unknown>>;
}

function failureOf(error: unknown): { failure: LookupFailure; error: string } {
  const code = (error as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
  if (code === 'ENODATA') {
    return { failure: 'nodata', error: code };
  }
  if (code === 'ENOTFOUND') {
    return { failure: 'nxdomain', error: code };
  }
  return { failure: 'failed', error: code };
}

export class DnsLookup {
  private readonly resolver: Resolver;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly cacheTtlMs: number;

  constructor(options: DnsLookupOptions) {
    this.resolver = new Resolver({
      timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      tries: options.tries ?? DEFAULT_TRIES,
    });
    if (options.servers.length > 0) {
      this.resolver.setServers([...options.servers]);
    }
    this.cacheTtlMs = options.cacheTtlMs ?? DEFAULT_CACHE_TTL_MS;
  }

  mx(name: string): Promise<LookupResult<MxRecord>> {
    return this.cached(`MX ${name}`, async () => {
      const records = await this.resolver.resolveMx(name);
      return records.map((record) => ({ preference: record.priority, exchange: record.exchange }));
    });
  }

  a(name: string): Promise<LookupResult<string>> {
    return this.cached(`A ${name}`, () => this.resolver.resolve4(name));
  }

  aaaa(name: string): Promise<LookupResult<string>> {
    return this.cached(`AAAA ${name}`, () => this.resolver.resolve6(name));
  }

  /** Cancels the lookups in flight; they settle as failed. */
  cancel(): void {
    this.resolver.cancel();
  }

  /**
   * Runs a query or returns its cached response. The promise itself is cached, so concurrent
   * callers share one query. A `failed` result is dropped at once so the next message queries again.
   */
  private cached<T>(key: string, query: () => Promise<T[]>): Promise<LookupResult<T>> {
    const now = Date.now();
    const hit = this.cache.get(key);
    if (hit && hit.expiresAt > now) {
      return hit.result as Promise<LookupResult<T>>;
    }
    const result = query().then(
      (records): LookupResult<T> => ({ ok: true, records }),
      (error: unknown): LookupResult<T> => ({ ok: false, ...failureOf(error) }),
    );
    this.cache.set(key, { expiresAt: now + this.cacheTtlMs, result });
    void result.then((settled) => {
      if (!settled.ok && settled.failure === 'failed' && this.cache.get(key)?.result === result) {
        this.cache.delete(key);
      }
    });
    this.prune(now);
    return result;
  }

  private prune(now: number): void {
    for (const [key, entry] of this.cache) {
      if (entry.expiresAt <= now) {
        this.cache.delete(key);
      }
    }
  }
}
