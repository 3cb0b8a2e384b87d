/**
 * The RPC handler of `greylist.check`. It parses the request, runs the greylist policy on it
 * and replies with the verdict as JSON. A request that cannot be judged is deferred, so
 * a broken caller never lets mail skip greylisting. A Redis failure is thrown, so the broker
 * requeues the request.
 */
import {
  type GreylistCheckReply,
  type GreylistCheckRequest,
  GreylistCheckRequestSchema,
} from '@secondary-mx/contracts';
import type { Logger } from '@secondary-mx/logger';
import { InvalidAddressError } from './network.ts';
import type { GreylistPolicy } from './policy.ts';

export type CheckHandler = (content: Buffer) => Promise<Buffer>;

/** Counters that the check handler updates. */
export interface CheckObserver {
  countVerdict(verdict: GreylistCheckReply): void;
  countRedisError(kind: 'command'): void;
}

const NO_OBSERVER: CheckObserver = {
  countVerdict: () => undefined,
  countRedisError: () => undefined,
};

export function createCheckHandler(
  policy: GreylistPolicy,
  logger: Logger,
  delayMs: number,
  observer: CheckObserver = NO_OBSERVER,
): CheckHandler {
  const invalidReply: GreylistCheckReply = {
    action: 'defer',
    retryAfter: Math.ceil(delayMs / 1000),
    reason: 'invalid-request',
  };

  return async (content) => {
    const parsed = parseRequest(content);
    if (!parsed.ok) {
      logger.warn(
        { session: parsed.session, problem: parsed.problem },
        'invalid greylist check request',
      );
      observer.countVerdict(invalidReply);
      return encodeReply(invalidReply);
    }

    const request = parsed.request;
    const log = logger.child({ session: request.session });
    try {
      const verdict = await policy.check(request, log);
      logVerdict(log, request, verdict);
      observer.countVerdict(verdict);
      return encodeReply(verdict);
    } catch (error) {
      if (error instanceof InvalidAddressError) {
        log.warn({ problem: error.message }, 'invalid greylist check request');
        observer.countVerdict(invalidReply);
        return encodeReply(invalidReply);
      }
      observer.countRedisError('command');
      throw error;
    }
  };
}

type ParsedRequest =
  | { ok: true; request: GreylistCheckRequest }
  | { ok: false; problem: string; session?: string };

function parseRequest(content: Buffer): ParsedRequest {
  let body: unknown;
  try {
    body = JSON.parse(content.toString('utf8'));
  } catch (error) {
    return { ok: false, problem: `body is not JSON: ${(error as Error).message}` };
  }
  const result = GreylistCheckRequestSchema.safeParse(body);
  if (!result.success) {
    const problem = result.error.issues
      .map((issue) => `${issue.path.join('.') || 'body'}: ${issue.message}`)
      .join('; ');
    return { ok: false, problem, session: sessionOf(body) };
  }
  return { ok: true, request: result.data };
}

/** Returns the session id of an invalid request when it has one, for the log line. */
function sessionOf(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) {
    return undefined;
  }
  const session = (body as Record<string, unknown>).session;
  return typeof session === 'string' ? session.slice(0, 64) : undefined;
}

function logVerdict(log: Logger, request: GreylistCheckRequest, verdict: GreylistCheckReply): void {
  const fields = { recipient: request.recipient, ...verdict };
  // Passes of whitelisted triplets, groups and clients are most checks and tell an operator
  // little.
  if (verdict.action === 'pass' && verdict.reason.includes('whitelisted')) {
    log.debug(fields, 'greylist verdict');
  } else {
    log.info(fields, 'greylist verdict');
  }
}

function encodeReply(reply: GreylistCheckReply): Buffer {
  return Buffer.from(JSON.stringify(reply), 'utf8');
}
