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
import {
  groupKey,
  type Triplet,
  type TripletFields,
  tripletFields,
  tripletKey,
} from './triplet.ts';

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

/** A triplet's record as the next check would judge it. Times are epoch ms on the Redis clock. */
export interface TripletRecord extends TripletFields {
  /**
   * `auto-whitelisted`: the client group passes at once. `passed`: a retry passed within the
   * maximum age. `waiting`: a first attempt within the retry window. `unknown`: none of these,
   * so the next check counts as a first attempt.
   */
  state: 'unknown' | 'waiting' | 'passed' | 'auto-whitelisted';
  key: string;
  groupKey: string;
  firstSeen?: number;
  passAfter?: number;
  lastPassed?: number;
  expiresAt?: number;
  groupPasses: number;
  /** Counted passes after which the group is auto-whitelisted; 0 when it never is. */
  autoWhitelistAfter: number;
}

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

  /**
   * Reads the records of a triplet and its client group without recording an attempt, and
   * judges them as the check script would at the current Redis server time. Throws
   * InvalidAddressError for a client address that is not an IP, and the Redis error when Redis
   * fails.
   */
  async lookup(triplet: Triplet): Promise<TripletRecord> {
    const { keyPrefix, delayMs, retryWindowMs, maxAgeMs } = this.options;
    const fields = tripletFields(triplet);
    const key = tripletKey(keyPrefix, triplet);
    const group = groupKey(keyPrefix, fields.clientGroup);
    const autoWhitelistAfter = isAutoWhitelistable(fields.clientGroup)
      ? (this.options.autoWhitelistPasses ?? 0)
      : 0;
    const results = await this.redis
      .multi()
      .time()
      .hmget(key, 'first', 'passed')
      .hget(group, 'count')
      .pttl(group)
      .exec();
    const [time, record, count, groupTtl] = (results ?? []).map(([error, value]) => {
      if (error) {
        throw error;
      }
      return value;
    }) as [[string, string], [string | null, string | null], string | null, number];

    const now = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
    const first = record[0] === null ? undefined : Number(record[0]);
    const passed = record[1] === null ? undefined : Number(record[1]);
    const groupPasses = count === null ? 0 : Number(count);
    const found = { ...fields, key, groupKey: group, groupPasses, autoWhitelistAfter };

    if (autoWhitelistAfter > 0 && groupPasses >= autoWhitelistAfter) {
      const expiresAt = groupTtl > 0 ? now + groupTtl : undefined;
      return { ...found, state: 'auto-whitelisted', expiresAt };
    }
    if (passed !== undefined && now - passed < maxAgeMs) {
      return {
        ...found,
        state: 'passed',
        firstSeen: first,
        lastPassed: passed,
        expiresAt: passed + maxAgeMs,
      };
    }
    if (passed === undefined && first !== undefined && now - first < retryWindowMs) {
      return {
        ...found,
        state: 'waiting',
        firstSeen: first,
        passAfter: first + delayMs,
        expiresAt: first + retryWindowMs,
      };
    }
    return { ...found, state: 'unknown' };
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
