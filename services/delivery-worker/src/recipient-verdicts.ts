/**
 * The classify stage: each recipient is judged by the reply that concerns it. A RCPT rejection
 * settles that recipient; the others get the reply after the final dot, the MAIL FROM rejection,
 * or "deferred" when the session broke.
 */
import type { JobRecipient } from '@secondary-mx/contracts';
import {
  classifyReply,
  type LocalFailure,
  localVerdict,
  parseReply,
  type ReplyVerdict,
} from './reply-classification.ts';
import type { TransactionResult } from './smtp-transaction.ts';

export interface RecipientVerdict extends ReplyVerdict {
  recipientId: string;
  address: string;
  /** Host name of the next hop that gave the reply; absent when no server replied. */
  remoteMta?: string;
  /** The session as `host[address]:port`, for log lines; absent when none was opened. */
  relay?: string;
}

export interface VerdictContext {
  host: string;
  relay: string;
}

function remoteVerdict(
  raw: string,
  context: VerdictContext,
): ReplyVerdict & { remoteMta?: string } {
  const parsed = parseReply(raw);
  if (!parsed) {
    return localVerdict(
      'connectionLost',
      `unexpected reply from ${context.relay}: ${raw.slice(0, 200)}`,
    );
  }
  return { ...classifyReply(parsed), remoteMta: context.host };
}

function verdictFor(
  address: string,
  result: TransactionResult,
  context: VerdictContext,
): ReplyVerdict & { remoteMta?: string } {
  switch (result.kind) {
    case 'local':
      return localVerdict(result.failure, result.detail);
    case 'mailRejected':
      return remoteVerdict(result.reply, context);
    case 'noRecipients': {
      const reply = result.rejected.get(address);
      return reply === undefined
        ? localVerdict('connectionLost', `no reply to RCPT from ${context.relay}`)
        : remoteVerdict(reply, context);
    }
    case 'completed': {
      return remoteVerdict(result.rejected.get(address) ?? result.reply, context);
    }
    case 'lost': {
      const reply = result.rejected.get(address) ?? result.reply;
      return reply === undefined
        ? localVerdict('connectionLost', `${result.detail} with ${context.relay}`)
        : remoteVerdict(reply, context);
    }
  }
}

/** Judges every recipient of a transaction. */
export function judgeRecipients(
  result: TransactionResult,
  recipients: readonly JobRecipient[],
  context: VerdictContext,
): RecipientVerdict[] {
  return recipients.map((recipient) => ({
    recipientId: recipient.id,
    address: recipient.address,
    relay: context.relay,
    ...verdictFor(recipient.address.trim(), result, context),
  }));
}

/** Gives every recipient the same local verdict, for failures before any session was opened. */
export function judgeAllLocally(
  recipients: readonly JobRecipient[],
  failure: LocalFailure | ReplyVerdict,
  text = '',
): RecipientVerdict[] {
  const verdict = typeof failure === 'string' ? localVerdict(failure, text) : failure;
  return recipients.map((recipient) => ({
    recipientId: recipient.id,
    address: recipient.address,
    ...verdict,
  }));
}
