/**
 * Delivery status notifications (RFC 3464) to senders: one DSN per message and event, listing
 * every recipient the event concerns. A DSN is stored as a message of kind 'dsn' from the null
 * sender to the original sender and delivered by the workers like any other message, through
 * the sender domain's MX. It is queued in the transaction that records the event, so an event
 * is never recorded without its DSN.
 *
 * No DSN is sent for a message from the null sender or for a DSN, and NOTIFY (RFC 3461) is
 * honoured: NEVER suppresses every DSN; without NOTIFY, failures and delays are reported but
 * not successes.
 */
import { normalizeDomain } from '@secondary-mx/address';
import { newQueueId } from '@secondary-mx/contracts';
import {
  insertMessage,
  type Queryable,
  type ReportedMessage,
  type ReportedRecipient,
} from '@secondary-mx/db';
import { buildDsn, type DsnAction, type DsnRecipient, encodeXtext } from '@secondary-mx/dsn';
import type { Logger } from '@secondary-mx/logger';

export type DsnEvent = 'failed' | 'expired' | 'delayed' | 'relayed';

export interface BounceSettings {
  reportingMta: string;
  fullContentLimit: number;
  bounceLifetimeMs: number;
}

const NOTIFY_CONDITION: Record<DsnEvent, 'FAILURE' | 'DELAY' | 'SUCCESS'> = {
  failed: 'FAILURE',
  expired: 'FAILURE',
  delayed: 'DELAY',
  relayed: 'SUCCESS',
};

/** Whether a recipient's NOTIFY asks for a DSN about this event. */
export function wantsNotification(notify: string[] | null, event: DsnEvent): boolean {
  const condition = NOTIFY_CONDITION[event];
  if (!notify || notify.length === 0) {
    return condition !== 'SUCCESS';
  }
  return !notify.includes('NEVER') && notify.includes(condition);
}

function statusFor(event: DsnEvent, enhancedCode: string | null): string {
  switch (event) {
    case 'failed':
      return enhancedCode?.startsWith('5.') ? enhancedCode : '5.0.0';
    case 'expired':
      // RFC 3463: 4.4.7 "delivery time expired", reported with action failed.
      return '4.4.7';
    case 'delayed':
      return enhancedCode?.startsWith('4.') ? enhancedCode : '4.0.0';
    case 'relayed':
      return '2.0.0';
  }
}

const ACTION: Record<DsnEvent, DsnAction> = {
  failed: 'failed',
  expired: 'failed',
  delayed: 'delayed',
  relayed: 'relayed',
};

/**
 * smtp-server hands over ORCPT and ENVID with their xtext decoded, and they are stored so;
 * buildDsn takes them in their wire form, as `addr-type;xtext`.
 */
function wireOrcpt(orcpt: string): string {
  const separator = orcpt.indexOf(';');
  return separator < 0
    ? `rfc822;${encodeXtext(orcpt)}`
    : `${orcpt.slice(0, separator)};${encodeXtext(orcpt.slice(separator + 1))}`;
}

function dsnRecipient(
  event: DsnEvent,
  recipient: ReportedRecipient,
  message: ReportedMessage,
): DsnRecipient {
  return {
    finalRecipient: recipient.address,
    ...(recipient.orcpt ? { originalRecipient: wireOrcpt(recipient.orcpt) } : {}),
    action: ACTION[event],
    status: statusFor(event, recipient.enhancedCode),
    ...(recipient.remoteMta ? { remoteMta: recipient.remoteMta } : {}),
    ...(recipient.lastReply ? { diagnosticCode: recipient.lastReply } : {}),
    ...(recipient.lastAttemptAt ? { lastAttemptDate: recipient.lastAttemptAt } : {}),
    ...(event === 'delayed' ? { willRetryUntil: message.expiresAt } : {}),
  };
}

/**
 * Queues one DSN about the event for those of the message's recipients whose NOTIFY asks for
 * it. Returns the DSN's queue id, or undefined when none is due.
 */
export async function queueDsn(
  db: Queryable,
  event: DsnEvent,
  message: ReportedMessage,
  recipients: ReportedRecipient[],
  settings: BounceSettings,
  logger: Logger,
): Promise<string | undefined> {
  if (message.sender === '' || message.kind === 'dsn') {
    return undefined;
  }
  const reported = recipients.filter((recipient) => wantsNotification(recipient.notify, event));
  if (reported.length === 0) {
    return undefined;
  }
  const log = logger.child({ queueId: message.id, event });
  const senderDomain = normalizeDomain(message.sender.slice(message.sender.lastIndexOf('@') + 1));
  if (!senderDomain) {
    // NOTE: a sender at an address literal cannot be routed by MX lookup, so it gets no DSN.
    log.warn({ sender: message.sender }, 'no DSN: the sender domain cannot be routed');
    return undefined;
  }
  const now = new Date();
  const dsn = buildDsn({
    reportingMta: settings.reportingMta,
    queueId: message.id,
    arrivalDate: message.receivedAt,
    ...(message.envid ? { envid: encodeXtext(message.envid) } : {}),
    sender: message.sender,
    recipients: reported.map((recipient) => dsnRecipient(event, recipient, message)),
    original: message.body ?? Buffer.from('\r\n'),
    ...(message.ret ? { ret: message.ret } : {}),
    fullContentLimit: settings.fullContentLimit,
    date: now,
  });
  const dsnId = newQueueId();
  await insertMessage(db, {
    queueId: dsnId,
    sender: '',
    recipients: [
      { envelope: { address: message.sender, notify: ['NEVER'] }, domain: senderDomain },
    ],
    body: dsn.message,
    bodyType: dsn.bodyType,
    smtpUtf8: dsn.smtpUtf8,
    clientAddress: '127.0.0.1',
    clientName: settings.reportingMta,
    receivedAt: now,
    expiresAt: new Date(now.getTime() + settings.bounceLifetimeMs),
    kind: 'dsn',
    dsnOf: message.id,
  });
  log.info(
    { dsnId, sender: message.sender, recipients: reported.map((recipient) => recipient.address) },
    'DSN queued',
  );
  return dsnId;
}
