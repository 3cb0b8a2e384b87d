/**
 * The classify stage: each recipient is judged by the reply that concerns it. A RCPT rejection
 * settles that recipient; the others get the reply after the final dot, the MAIL FROM rejection,
 * or "deferred" when the session broke.
 */
import type { JobMessage } from '@secondary-mx/contracts';
import {
  classifyReply,
  type LocalFailure,
  localVerdict,
  parseReply,
  type ReplyStage,
  type ReplyVerdict,
} from './reply-classification.ts';
import type { TransactionResult } from './smtp-transaction.ts';

export interface RecipientVerdict extends ReplyVerdict {
  queueId: string;
  recipientId: string;
  address: string;
  /** Host name of the next hop that gave the reply; absent when no server replied. */
  remoteMta?: string;
  /** The session as `host[address]:port`, for log lines; absent when none was opened. */
  relay?: string;
  /**
   * Set on a delivered recipient: whether the next hop advertised DSN, so it got the NOTIFY,
   * ORCPT, RET and ENVID parameters. When false, DSN duties for the recipient stay with us.
   */
  remoteDsn?: boolean;
}

export interface VerdictContext {
  host: string;
  relay: string;
  /** Whether the server advertised DSN (RFC 3461) in its EHLO reply. */
  dsn: boolean;
}

function remoteVerdict(
  raw: string,
  stage: ReplyStage,
  context: VerdictContext,
): ReplyVerdict & { remoteMta?: string } {
  const parsed = parseReply(raw);
  if (!parsed) {
    return localVerdict(
      'connectionLost',
      `unexpected reply from ${context.relay}: ${raw.slice(0, 200)}`,
    );
  }
  return { ...classifyReply(parsed, stage), remoteMta: context.host };
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
      return remoteVerdict(result.reply, 'mail', context);
    case 'noRecipients': {
      const reply = result.rejected.get(address);
      return reply === undefined
        ? localVerdict('connectionLost', `no reply to RCPT from ${context.relay}`)
        : remoteVerdict(reply, 'rcpt', context);
    }
    case 'completed': {
      const rcptReply = result.rejected.get(address);
      return rcptReply === undefined
        ? remoteVerdict(result.reply, 'data', context)
        : remoteVerdict(rcptReply, 'rcpt', context);
    }
    case 'lost': {
      const rcptReply = result.rejected.get(address);
      if (rcptReply !== undefined) {
        return remoteVerdict(rcptReply, 'rcpt', context);
      }
      return result.reply === undefined
        ? localVerdict('connectionLost', `${result.detail} with ${context.relay}`)
        : remoteVerdict(result.reply, result.stage, context);
    }
  }
}

/** Judges every recipient of one message's transaction. */
export function judgeRecipients(
  result: TransactionResult,
  message: JobMessage,
  context: VerdictContext,
): RecipientVerdict[] {
  return message.recipients.map((recipient) => {
    const verdict: RecipientVerdict = {
      queueId: message.queueId,
      recipientId: recipient.id,
      address: recipient.address,
      relay: context.relay,
      ...verdictFor(recipient.address.trim(), result, context),
    };
    if (verdict.status === 'delivered') {
      verdict.remoteDsn = context.dsn;
    }
    return verdict;
  });
}

/**
 * Gives every recipient of the messages the same local verdict, for failures outside a
 * transaction (DNS, connect, lease).
 */
export function judgeAllLocally(
  messages: readonly JobMessage[],
  failure: LocalFailure | ReplyVerdict,
  text = '',
): RecipientVerdict[] {
  const verdict = typeof failure === 'string' ? localVerdict(failure, text) : failure;
  return messages.flatMap((message) =>
    message.recipients.map((recipient) => ({
      queueId: message.queueId,
      recipientId: recipient.id,
      address: recipient.address,
      ...verdict,
    })),
  );
}
