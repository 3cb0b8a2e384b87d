/**
 * Greylisting of (client network, sender, recipient) triplets in Redis. A first attempt is
 * deferred. A retry after the delay and within the retry window passes and whitelists the
 * triplet for the maximum age, and each later pass renews that age.
 */
import type { GreylistCheckReply } from '@secondary-mx/contracts';
import type { Redis } from 'ioredis';
import { CHECK_SCRIPT, type CheckScriptReply } from './check-script.ts';
import { type Triplet, tripletKey } from './triplet.ts';

export interface GreylistOptions {
  /** Prepended to every key, such as `mx:`. */
  keyPrefix: string;
  /** Minimum wait in ms between the first attempt and a retry that passes. 0 passes at once. */
  delayMs: number;
  /** Time in ms that a first attempt is remembered. It must be longer than the delay. */
  retryWindowMs: number;
  /** How long in ms a passed triplet stays whitelisted after its latest pass. */
  maxAgeMs: number;
}

const COMMAND = 'greylistCheck';

/** The command that defineCommand adds to the client, typed here because ioredis cannot. */
interface GreylistCommands {
  [COMMAND](
    key: string,
    delayMs: number,
    retryWindowMs: number,
    maxAgeMs: number,
    now: number | '',
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
    redis.defineCommand(COMMAND, { numberOfKeys: 1, lua: CHECK_SCRIPT });
  }

  /**
   * Records one attempt of the triplet and returns the verdict. `now` is in epoch ms, and without
   * it the script uses the Redis server clock. Keep to one of the two clocks for a triplet,
   * because its stored times come from that clock. Throws InvalidAddressError for a client
   * address that is not an IP, and the Redis error when Redis fails.
   */
  async check(triplet: Triplet, now?: number): Promise<GreylistCheckReply> {
    const key = tripletKey(this.options.keyPrefix, triplet);
    const { delayMs, retryWindowMs, maxAgeMs } = this.options;
    const commands = this.redis as unknown as GreylistCommands;
    const reply = await commands[COMMAND](key, delayMs, retryWindowMs, maxAgeMs, now ?? '');
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
