/**
 * The client side of the greylist.admin RPC. The greylist service owns the triplet records and
 * the whitelist entries in Redis, so admin-api forwards each greylist request to it and maps
 * the reply onto an HTTP status.
 */
import {
  type Broker,
  BrokerUnavailableError,
  RpcTimeoutError,
  RpcUnroutableError,
} from '@secondary-mx/amqp';
import {
  GreylistAdminErrorSchema,
  type GreylistAdminRequest,
  QUEUE,
} from '@secondary-mx/contracts';
import type { FastifyBaseLogger } from 'fastify';
import { type ErrorBody, errorBody } from './errors.ts';

/** Maximum wait for a reply. A lookup runs an SPF check, which the service limits to 1.5 s by default. */
export const GREYLIST_RPC_TIMEOUT_MS = 5_000;

const STATUS_OF_ERROR = {
  invalid: 400,
  'not-found': 404,
  conflict: 409,
  unavailable: 503,
} as const;

export type GreylistCallResult<T> = { ok: true; reply: T } | { ok: false; body: ErrorBody };

/** The part of a zod schema that parses a reply. */
interface ReplySchema<T> {
  safeParse(
    value: unknown,
  ): { success: true; data: T } | { success: false; error: { message: string } };
}

/**
 * Sends one request and parses the reply with the schema of its action. Returns the error body
 * to send instead when the service replied with an error, did not reply or replied with
 * something the schema does not accept.
 */
export async function callGreylistAdmin<T>(
  broker: Broker,
  logger: FastifyBaseLogger,
  request: GreylistAdminRequest,
  schema: ReplySchema<T>,
): Promise<GreylistCallResult<T>> {
  let content: Buffer;
  try {
    content = await broker.call(
      QUEUE.greylistAdmin,
      Buffer.from(JSON.stringify(request), 'utf8'),
      GREYLIST_RPC_TIMEOUT_MS,
    );
  } catch (error) {
    return { ok: false, body: unreachableBody(error, logger, request.action) };
  }

  let parsed: unknown;
  try {
    parsed = JSON.parse(content.toString('utf8'));
  } catch {
    parsed = undefined;
  }
  const failure = GreylistAdminErrorSchema.safeParse(parsed);
  if (failure.success) {
    const { error, message } = failure.data;
    return { ok: false, body: errorBody(STATUS_OF_ERROR[error], message) };
  }
  const reply = schema.safeParse(parsed);
  if (!reply.success) {
    logger.error(
      { action: request.action, problem: reply.error.message },
      'greylist service sent a reply that does not match the contract',
    );
    return {
      ok: false,
      body: errorBody(502, 'the greylist service sent an invalid reply, see the admin-api log'),
    };
  }
  return { ok: true, reply: reply.data };
}

function unreachableBody(error: unknown, logger: FastifyBaseLogger, action: string): ErrorBody {
  logger.warn({ err: error, action }, 'greylist admin request failed');
  if (error instanceof RpcUnroutableError) {
    return errorBody(503, 'no greylist service is running: start one and try again');
  }
  if (error instanceof RpcTimeoutError) {
    return errorBody(
      503,
      `the greylist service did not reply within ${GREYLIST_RPC_TIMEOUT_MS / 1000} s, try again`,
    );
  }
  if (error instanceof BrokerUnavailableError) {
    return errorBody(503, 'RabbitMQ is not connected, so the greylist service cannot be reached');
  }
  throw error;
}
