/**
 * Serves recipient.verify: resolves the domain's next hops as a delivery would (override or MX
 * hosts more preferred than ours) and checks the recipient with them through smtp-verify. Every
 * failure becomes an `unknown` reply, so ingress never waits for a request that threw.
 */
import {
  type RecipientVerifyReply,
  type RecipientVerifyRequest,
  RecipientVerifyRequestSchema,
} from '@secondary-mx/contracts';
import type { Logger } from '@secondary-mx/logger';
import type { WorkerObserver } from './metrics.ts';
import type { NextHopResolver } from './next-hop.ts';
import { type VerifyAnswer, type VerifyOptions, verifyAtHops } from './smtp-verify.ts';

export interface VerifyHandlerOptions {
  nextHops: NextHopResolver;
  verify: VerifyOptions;
  logger: Logger;
  metrics?: Pick<WorkerObserver, 'countVerification'>;
}

function encode(reply: RecipientVerifyReply): Buffer {
  return Buffer.from(JSON.stringify(reply), 'utf8');
}

export function createVerifyHandler(
  options: VerifyHandlerOptions,
): (content: Buffer) => Promise<Buffer> {
  const { nextHops, logger } = options;

  const verify = async (request: RecipientVerifyRequest): Promise<VerifyAnswer> => {
    const plan = await nextHops.resolveBefore(
      request.domain,
      request.primaryHosts,
      request.deadline,
    );
    if (!plan.ok) {
      return { result: 'unknown', reply: plan.verdict.reply };
    }
    return verifyAtHops(request.recipient, plan.hops, options.verify, request.deadline);
  };

  return async (content) => {
    let request: RecipientVerifyRequest;
    try {
      request = RecipientVerifyRequestSchema.parse(JSON.parse(content.toString('utf8')));
    } catch (error) {
      logger.error({ err: error }, 'recipient.verify request is invalid');
      return encode({ result: 'unknown', reply: 'invalid request' });
    }

    const startedAt = Date.now();
    const log = logger.child({ session: request.session, domain: request.domain });
    if (request.deadline <= startedAt) {
      log.info({ deadline: request.deadline }, 'verify request arrived after its deadline');
      return encode({ result: 'unknown', reply: 'request arrived after its deadline' });
    }

    let answer: VerifyAnswer;
    try {
      answer = await verify(request);
    } catch (error) {
      log.error({ err: error }, 'recipient verification failed unexpectedly');
      answer = { result: 'unknown', reply: 'verification failed in the delivery worker' };
    }
    log.info(
      {
        recipient: request.recipient,
        result: answer.result,
        relay: answer.relay ?? 'none',
        reply: answer.reply,
        durationMs: Date.now() - startedAt,
      },
      'recipient verified with the primary',
    );
    options.metrics?.countVerification(answer.result);
    return encode({
      result: answer.result,
      reply: answer.reply.slice(0, 2000),
      ...(answer.remoteMta ? { remoteMta: answer.remoteMta } : {}),
    });
  };
}
