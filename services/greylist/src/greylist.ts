/**
 * Greylisting of (client group, sender, recipient) triplets in Redis. A first attempt is
 * deferred. A retry after the delay and within the retry window passes and whitelists the
 * triplet for the maximum age, and each later pass renews that age. A client group with enough
 * passes is auto-whitelisted: all its triplets pass at once.
 */
import type { GreylistCheckReply } from '@secondary-mx/contracts';
import type { Redis } from 'ioredis';
import { CHECK_SCRIPT, type CheckScriptReply } from './check-script.ts';
import { clientGroup, isAutoWhitelistable } from './client-group.ts';
import { groupKey, type Triplet, tripletKey } from './triplet.ts';

export interface GreylistOptions {
  /** Prepended to every key, such as `mx:`. */
  keyPrefix: string;
  /** Minimum wait in ms between the first attempt and a retry that passes. 0 passes at once. */
  delayMs: number;
  /** Time in ms that a first attempt is remembered. It must be longer than the delay. */
  retryWindowMs: number;
  /** How long in ms a passed triplet stays whitelisted after its latest pass. */
  maxAgeMs: number;
  /**
   * Passes of a client group, counted at most once per hour, after which all its triplets pass
   * at once. 0 or absent turns the auto-whitelist off.
   */
  autoWhitelistPasses?: number;
}

/** A client group's passes count at most once per this interval, in ms. */
export const AUTO_WHITELIST_COUNT_INTERVAL_MS = 3_600_000;

const COMMAND = 'greylistCheck';

/** The command that defineCommand adds to the client, typed here because ioredis cannot. */
interface GreylistCommands {
  [COMMAND](
    key: string,
    groupKey: string,
    delayMs: number,
    retryWindowMs: number,
    maxAgeMs: number,
    now: number | '',
    autoWhitelistPasses: number,
    countIntervalMs: number,
  ): Promise<CheckScriptReply>;
}

export class Greylist {
  constructor(
    private readonly redis: Redis,
    private readonly options: GreylistOptions,
  ) {
    if (options.delayMs >= options.retryWindowMs) {
      throw new RangeError(
        `greylist delay (${options.delayMs} ms) must be shorter than the retry window (${options.retryWindowMs} ms), or no retry could ever pass`,
      );
    }
    redis.defineCommand(COMMAND, { numberOfKeys: 2, lua: CHECK_SCRIPT });
  }

  /**
   * Records one attempt of the triplet and returns the verdict. `now` is in epoch ms, and without
   * it the script uses the Redis server clock. Keep to one of the two clocks for a triplet,
   * because its stored times come from that clock. Throws InvalidAddressError for a client
   * address that is not an IP, and the Redis error when Redis fails.
   */
  async check(triplet: Triplet, now?: number): Promise<GreylistCheckReply> {
    const { keyPrefix, delayMs, retryWindowMs, maxAgeMs } = this.options;
    const key = tripletKey(keyPrefix, triplet);
    const group = clientGroup(triplet);
    const autoWhitelistPasses = isAutoWhitelistable(group)
      ? (this.options.autoWhitelistPasses ?? 0)
      : 0;
    const commands = this.redis as unknown as GreylistCommands;
    const reply = await commands[COMMAND](
      key,
      groupKey(keyPrefix, group),
      delayMs,
      retryWindowMs,
      maxAgeMs,
      now ?? '',
      autoWhitelistPasses,
      AUTO_WHITELIST_COUNT_INTERVAL_MS,
    );
    return toCheckReply(reply);
  }
}

function toCheckReply([action, reason, retryAfter, delayed]: CheckScriptReply): GreylistCheckReply {
  if (action !== 'pass' && action !== 'defer') {
    throw new Error(`greylist script returned the unknown action ${JSON.stringify(action)}`);
  }
  const reply: GreylistCheckReply = { action, reason };
  if (retryAfter >= 0) {
    reply.retryAfter = retryAfter;
  }
  if (delayed >= 0) {
    reply.delayed = delayed;
  }
  return reply;
}
