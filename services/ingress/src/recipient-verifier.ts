/**
 * Recipient verification for domains whose recipientCheck is `verify`: the cache first, then
 * the primary through recipient.verify, which a delivery worker serves. Concurrent checks of
 * one address in this process share one request, and a verdict that comes after
 * MX_VERIFY_TIMEOUT still fills the cache for the sender's retry.
 *
 * NOTE: replicas do not share requests in flight, so each ingress replica may ask the primary
 * once about a new address before the first verdict is cached.
 */
import type { Broker } from '@secondary-mx/amqp';
import {
  QUEUE,
  type RecipientVerifyReply,
  RecipientVerifyReplySchema,
  type RecipientVerifyRequest,
} from '@secondary-mx/contracts';
import type { Logger } from '@secondary-mx/logger';
import type { CachedVerdict, VerifyCache } from './verify-cache.ts';

export type VerifyOutcome =
  | (CachedVerdict & { source: 'cache' | 'primary' })
  | { result: 'unknown'; reply: string; source: 'primary' | 'timeout' };

export interface VerifyRequest {
  session: string;
  recipient: string;
  domain: string;
  primaryHosts: string[];
  /** The address folded as the domain compares local parts; the key of the cache entry. */
  cacheAddress: string;
}

/**
 * How long a request to the delivery workers may run in the background after ingress stopped
 * waiting: long enough for a slow primary to reply, so the verdict reaches the cache.
 */
const BACKGROUND_LIMIT_MS = 30_000;

export class RecipientVerifier {
  private readonly inflight = new Map<string, Promise<RecipientVerifyReply>>();

  constructor(
    private readonly broker: Broker,
    private readonly cache: VerifyCache,
    private readonly timeoutMs: number,
  ) {}

  /** Returns the verdict on one recipient; `unknown` when neither cache nor primary had one. */
  async verify(request: VerifyRequest, log: Logger): Promise<VerifyOutcome> {
    const key = this.cache.key(request.cacheAddress);
    const cached = await this.readCache(key, request.recipient, log);
    if (cached) {
      return { ...cached, source: 'cache' };
    }

    const pending = this.inflight.get(key) ?? this.ask(key, request, log);
    const answer = await this.waitFor(pending);
    if (answer && answer.result !== 'unknown') {
      return { result: answer.result, reply: answer.reply, source: 'primary' };
    }

    // A 4xx, an unreachable primary or no verdict in time: the cache decides, because another
    // replica or an earlier late verdict may have filled it since the first lookup.
    const again = await this.readCache(key, request.recipient, log);
    if (again) {
      return { ...again, source: 'cache' };
    }
    if (!answer) {
      return {
        result: 'unknown',
        reply: `no verdict within ${this.timeoutMs} ms`,
        source: 'timeout',
      };
    }
    return { result: 'unknown', reply: answer.reply, source: 'primary' };
  }

  private async readCache(
    key: string,
    recipient: string,
    log: Logger,
  ): Promise<CachedVerdict | undefined> {
    try {
      return await this.cache.get(key, recipient);
    } catch (error) {
      log.warn({ err: error, recipient }, 'reading the verify cache failed, treated as a miss');
      return undefined;
    }
  }

  /** Resolves with the answer, or undefined when MX_VERIFY_TIMEOUT passes first. */
  private async waitFor(
    pending: Promise<RecipientVerifyReply>,
  ): Promise<RecipientVerifyReply | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), this.timeoutMs);
    });
    try {
      return await Promise.race([pending, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private ask(key: string, request: VerifyRequest, log: Logger): Promise<RecipientVerifyReply> {
    const limitMs = Math.max(this.timeoutMs, BACKGROUND_LIMIT_MS);
    const body: RecipientVerifyRequest = {
      session: request.session,
      recipient: request.recipient,
      domain: request.domain,
      primaryHosts: request.primaryHosts,
      deadline: Date.now() + limitMs,
    };
    const pending = (async (): Promise<RecipientVerifyReply> => {
      try {
        const content = await this.broker.call(
          QUEUE.recipientVerify,
          Buffer.from(JSON.stringify(body)),
          limitMs,
        );
        const reply = RecipientVerifyReplySchema.parse(JSON.parse(content.toString('utf8')));
        if (reply.result !== 'unknown') {
          await this.cache
            .set(key, request.recipient, { result: reply.result, reply: reply.reply })
            .catch((error: unknown) =>
              log.warn(
                { err: error, recipient: request.recipient },
                'writing the verify cache failed',
              ),
            );
        }
        return reply;
      } catch (error) {
        log.warn({ err: error, recipient: request.recipient }, 'recipient.verify request failed');
        return { result: 'unknown', reply: (error as Error).message };
      } finally {
        this.inflight.delete(key);
      }
    })();
    this.inflight.set(key, pending);
    return pending;
  }
}
