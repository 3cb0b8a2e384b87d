/**
 * The RPC handler of `greylist.admin`, which admin-api calls: triplet lookups and changes to the
 * whitelist entries kept in Redis. Every request that reaches the handler gets a JSON reply,
 * errors included, so the caller need not wait for its timeout. A Redis failure is the `unavailable` error, not a
 * requeue as for checks, because an administrator can simply try again.
 */
import {
  type GreylistAdminError,
  type GreylistAdminRequest,
  GreylistAdminRequestSchema,
} from '@secondary-mx/contracts';
import type { Logger } from '@secondary-mx/logger';
import type { CheckHandler } from './check-handler.ts';
import { InvalidAddressError } from './network.ts';
import type { GreylistPolicy } from './policy.ts';
import type { WhitelistStore } from './whitelist-store.ts';
import { InvalidWhitelistValueError } from './whitelist-value.ts';

export function createAdminHandler(
  policy: GreylistPolicy,
  store: WhitelistStore,
  logger: Logger,
): CheckHandler {
  return async (content) => {
    const parsed = parseRequest(content);
    if ('ok' in parsed) {
      logger.warn({ problem: parsed.message }, 'invalid greylist admin request');
      return encodeReply(parsed);
    }

    try {
      return encodeReply(await handle(parsed, policy, store, logger));
    } catch (error) {
      if (error instanceof InvalidAddressError || error instanceof InvalidWhitelistValueError) {
        return encodeReply({ ok: false, error: 'invalid', message: error.message });
      }
      logger.error({ err: error, action: parsed.action }, 'greylist admin request failed');
      const reply: GreylistAdminError = {
        ok: false,
        error: 'unavailable',
        message: `the greylist service could not reach Redis: ${(error as Error).message}`,
      };
      return encodeReply(reply);
    }
  };
}

async function handle(
  request: GreylistAdminRequest,
  policy: GreylistPolicy,
  store: WhitelistStore,
  logger: Logger,
): Promise<object> {
  switch (request.action) {
    case 'lookup': {
      const { action: _, ...triplet } = request;
      return { ok: true, lookup: await policy.lookup(triplet, logger) };
    }
    case 'whitelist.list':
      // Read afresh, so a list shown right after a change on another replica contains it.
      await store.reload();
      return { ok: true, entries: store.entries };
    case 'whitelist.add': {
      const change = await store.add(request.kind, request.value, request.note);
      if (change.ok && change.changed) {
        logger.info(
          { kind: request.kind, value: change.entry.value },
          'greylist whitelist entry added',
        );
      }
      return change;
    }
    case 'whitelist.remove': {
      const change = await store.remove(request.kind, request.value);
      if (change.ok) {
        logger.info(
          { kind: request.kind, value: change.entry.value },
          'greylist whitelist entry removed',
        );
      }
      return change;
    }
  }
}

function parseRequest(content: Buffer): GreylistAdminRequest | GreylistAdminError {
  let body: unknown;
  try {
    body = JSON.parse(content.toString('utf8'));
  } catch (error) {
    return {
      ok: false,
      error: 'invalid',
      message: `body is not JSON: ${(error as Error).message}`,
    };
  }
  const result = GreylistAdminRequestSchema.safeParse(body);
  if (!result.success) {
    const message = result.error.issues
      .map((issue) => `${issue.path.join('.') || 'body'}: ${issue.message}`)
      .join('; ');
    return { ok: false, error: 'invalid', message };
  }
  return result.data;
}

function encodeReply(reply: object): Buffer {
  return Buffer.from(JSON.stringify(reply), 'utf8');
}
