/**
 * The cache of the primary's verdicts on recipients, in Redis under MX_REDIS_PREFIX, shared by
 * every ingress replica. Like Postfix's verify(8) cache, a valid address is remembered for
 * MX_VERIFY_POSITIVE_TTL and an invalid one for MX_VERIFY_NEGATIVE_TTL; an unknown one is not
 * stored. Keys are SHA-256 hashes and stored replies have the address masked, so no recipient
 * address is kept in the clear.
 *
 * NOTE: an unsalted hash of an address can be confirmed by someone who guesses the address.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

export type CachedVerdict = { result: 'valid' | 'invalid'; reply: string };

/** Stands in for the recipient in stored replies. */
const ADDRESS_MARK = '<recipient>';

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class VerifyCache {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly positiveTtlMs: number,
    private readonly negativeTtlMs: number,
  ) {}

  /**
   * Returns the cache key of a recipient. `address` must already be folded the way the domain
   * compares local parts, so that its spellings share one entry.
   */
  key(address: string): string {
    return `${this.prefix}verify:${createHash('sha256').update(address, 'utf8').digest('hex')}`;
  }

  /** Returns the cached verdict, or undefined when there is none. Throws when Redis fails. */
  async get(key: string, recipient: string): Promise<CachedVerdict | undefined> {
    const raw = await this.redis.get(key);
    if (raw === null) {
      return undefined;
    }
    const stored = JSON.parse(raw) as CachedVerdict;
    return {
      result: stored.result,
      reply: stored.reply.split(ADDRESS_MARK).join(`<${recipient}>`),
    };
  }

  /** Stores a verdict with the TTL of its kind. Throws when Redis fails. */
  async set(key: string, recipient: string, verdict: CachedVerdict): Promise<void> {
    const masked = verdict.reply.replace(
      new RegExp(`<?${escapeRegExp(recipient)}>?`, 'gi'),
      ADDRESS_MARK,
    );
    const ttl = verdict.result === 'valid' ? this.positiveTtlMs : this.negativeTtlMs;
    await this.redis.set(key, JSON.stringify({ result: verdict.result, reply: masked }), 'PX', ttl);
  }
}
