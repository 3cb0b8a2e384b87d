/** Conversion of database rows into API responses: camelCase fields, dates as ISO 8601 strings. */
import type {
  DeliveryAttemptView,
  DomainEvent,
  DomainRow,
  MessageDetail,
  MessageView,
  RecipientDetail,
  RecipientView,
} from '@secondary-mx/db';

export interface DomainResponse {
  domain: string;
  memberNumber: string;
  state: string;
  contact: string | null;
  note: string | null;
  primaryHosts: string[];
  recipientCheck: string;
  localPartCaseSensitive: boolean;
  greylist: boolean;
  requestedAt: string;
  approvedAt: string | null;
  updatedAt: string;
}

/**
 * Formats a timestamp as ISO 8601 in UTC. Recipients come out of json_agg, so their timestamps
 * are PostgreSQL's JSON text (`2025-12-04T10:00:00.123456+00:00`) although typed as Date.
 */
function isoString(value: Date | string): string {
  return (value instanceof Date ? value : new Date(value)).toISOString();
}

function optionalIsoString(value: Date | string | null): string | null {
  return value === null ? null : isoString(value);
}

export function toDomainResponse(row: DomainRow): DomainResponse {
  return {
    domain: row.name,
    memberNumber: row.memberNumber,
    state: row.state,
    contact: row.contact,
    note: row.note,
    primaryHosts: row.primaryHosts,
    recipientCheck: row.recipientCheck,
    localPartCaseSensitive: row.localPartCaseSensitive,
    greylist: row.greylist,
    requestedAt: isoString(row.requestedAt),
    approvedAt: optionalIsoString(row.approvedAt),
    updatedAt: isoString(row.updatedAt),
  };
}

export function toDomainEventResponse(event: DomainEvent) {
  return {
    at: isoString(event.at),
    actor: event.actor,
    action: event.action,
    fromState: event.fromState,
    toState: event.toState,
    reason: event.reason,
    detail: event.detail,
  };
}

function toRecipientResponse(recipient: RecipientView) {
  return {
    id: recipient.id,
    address: recipient.address,
    domain: recipient.domain,
    state: recipient.state,
    attempts: recipient.attempts,
    nextAttemptAt: optionalIsoString(recipient.nextAttemptAt),
    lastAttemptAt: optionalIsoString(recipient.lastAttemptAt),
    lastReply: recipient.lastReply,
    remoteMta: recipient.remoteMta,
  };
}

export function toMessageResponse(message: MessageView) {
  return {
    id: message.id,
    sender: message.sender,
    size: message.size,
    receivedAt: isoString(message.receivedAt),
    expiresAt: isoString(message.expiresAt),
    completedAt: optionalIsoString(message.completedAt),
    recipients: message.recipients.map(toRecipientResponse),
  };
}

function toDeliveryAttemptResponse(attempt: DeliveryAttemptView) {
  return {
    attemptedAt: isoString(attempt.attemptedAt),
    status: attempt.status,
    reply: attempt.reply,
    remoteMta: attempt.remoteMta,
  };
}

function toRecipientDetailResponse(recipient: RecipientDetail) {
  return {
    ...toRecipientResponse(recipient),
    notify: recipient.notify,
    orcpt: recipient.orcpt,
    enhancedCode: recipient.enhancedCode,
    pendingAction: recipient.pendingAction,
    deliveryAttempts: recipient.deliveryAttempts.map(toDeliveryAttemptResponse),
  };
}

export function toMessageDetailResponse(message: MessageDetail) {
  return {
    ...toMessageResponse({ ...message, recipients: [] }),
    kind: message.kind,
    dsnOf: message.dsnOf,
    ret: message.ret,
    envid: message.envid,
    bodyType: message.bodyType,
    smtpUtf8: message.smtpUtf8,
    clientAddress: message.clientAddress,
    clientName: message.clientName,
    heloName: message.heloName,
    bodyStored: message.bodyStored,
    recipients: message.recipients.map(toRecipientDetailResponse),
  };
}
