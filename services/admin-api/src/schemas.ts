/**
 * JSON schemas shared by the routes. Fastify validates requests with them, serializes responses
 * with them and @fastify/swagger turns them into the OpenAPI document at /docs/json.
 */
import { DOMAIN_STATES, RECIPIENT_CHECKS, RECIPIENT_STATES } from '@secondary-mx/contracts';

/**
 * Longest member number accepted before MX_MEMBER_NUMBER_PATTERN is applied, so that an
 * operator's pattern never runs on unbounded input.
 */
export const MAX_MEMBER_NUMBER_LENGTH = 128;

export const MAX_CONTACT_LENGTH = 320;
export const MAX_NOTE_LENGTH = 1000;
export const MAX_REASON_LENGTH = 500;

export const MAX_PRIMARY_HOSTS = 10;

/**
 * Maximum entries per recipient list. Ingress keeps every list in memory and reloads them all
 * on each change, so the bound keeps that reload small.
 */
export const MAX_RECIPIENT_ENTRIES = 10_000;

export const ErrorSchema = {
  type: 'object',
  required: ['statusCode', 'error', 'message'],
  properties: {
    statusCode: { type: 'integer' },
    error: { type: 'string', description: 'HTTP reason phrase' },
    message: { type: 'string', description: 'what failed, on which value' },
  },
} as const;

/** Response entries for the given error status codes, all with the error body. */
export function errorResponses(...statusCodes: number[]): Record<number, typeof ErrorSchema> {
  return Object.fromEntries(statusCodes.map((statusCode) => [statusCode, ErrorSchema]));
}

const timestamp = { type: 'string', format: 'date-time' } as const;
const optionalTimestamp = { type: ['string', 'null'], format: 'date-time' } as const;

export const DomainSchema = {
  type: 'object',
  required: [
    'domain',
    'memberNumber',
    'state',
    'contact',
    'note',
    'primaryHosts',
    'recipientCheck',
    'localPartCaseSensitive',
    'greylist',
    'requestedAt',
    'approvedAt',
    'updatedAt',
  ],
  properties: {
    domain: { type: 'string', description: 'lower-case A-label form' },
    memberNumber: { type: 'string' },
    state: {
      type: 'string',
      enum: [...DOMAIN_STATES],
      description:
        '`pending` until approved, `approved` while relayed, `suspended` while ingress rejects ' +
        'its recipients with 450 4.7.1 and waiting mail is still delivered',
    },
    contact: { type: ['string', 'null'], description: "email address of the member's contact" },
    note: { type: ['string', 'null'] },
    primaryHosts: {
      type: 'array',
      items: { type: 'string' },
      description: 'next-hop override (`host` or `host:port`), or empty to use the MX records',
    },
    recipientCheck: {
      type: 'string',
      enum: [...RECIPIENT_CHECKS],
      description:
        'how RCPT TO is checked: `none` accepts every local part, `list` only those in the ' +
        "domain's recipient list, `verify` asks the primary",
    },
    localPartCaseSensitive: {
      type: 'boolean',
      description: 'whether recipient-list entries match local parts case-sensitively',
    },
    greylist: { type: 'boolean', description: "whether the domain's recipients are greylisted" },
    requestedAt: timestamp,
    approvedAt: optionalTimestamp,
    updatedAt: timestamp,
  },
} as const;

/** The optional body of a lifecycle change. */
export const ReasonBodySchema = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: {
    reason: {
      type: 'string',
      maxLength: MAX_REASON_LENGTH,
      description: 'why, kept in the domain events',
    },
  },
} as const;

export const DomainEventSchema = {
  type: 'object',
  required: ['at', 'actor', 'action', 'fromState', 'toState', 'reason', 'detail'],
  properties: {
    at: timestamp,
    actor: { type: 'string', description: '`admin` (MX_ADMIN_TOKEN) or `token:<id>`' },
    action: { type: 'string', enum: ['request', 'approve', 'suspend', 'remove', 'change'] },
    fromState: { type: ['string', 'null'], description: 'null for a request' },
    toState: { type: 'string', description: 'a domain state, or `removed`' },
    reason: { type: ['string', 'null'] },
    detail: {
      type: ['string', 'null'],
      description: 'what the change did besides the state, such as the waiting mail it bounced',
    },
  },
} as const;

export const DomainParamsSchema = {
  type: 'object',
  required: ['domain'],
  properties: {
    domain: {
      type: 'string',
      minLength: 1,
      maxLength: 253,
      description: 'domain name, IDN allowed',
    },
  },
} as const;

export const RecipientSchema = {
  type: 'object',
  required: ['id', 'address', 'domain', 'state', 'attempts'],
  properties: {
    id: { type: 'string' },
    address: { type: 'string' },
    domain: { type: 'string' },
    state: { type: 'string', enum: [...RECIPIENT_STATES] },
    attempts: { type: 'integer' },
    nextAttemptAt: { ...optionalTimestamp, description: 'set while queued or deferred' },
    lastAttemptAt: optionalTimestamp,
    lastReply: { type: ['string', 'null'] },
    remoteMta: { type: ['string', 'null'] },
  },
} as const;

export const MessageSchema = {
  type: 'object',
  required: ['id', 'sender', 'size', 'receivedAt', 'expiresAt', 'completedAt', 'recipients'],
  properties: {
    id: { type: 'string', description: 'queue id' },
    sender: { type: 'string', description: 'envelope sender, empty for the null reverse-path' },
    size: { type: 'integer', description: 'bytes' },
    receivedAt: timestamp,
    expiresAt: timestamp,
    completedAt: optionalTimestamp,
    recipients: {
      type: 'array',
      items: RecipientSchema,
      description: 'the recipients that match the filter',
    },
  },
} as const;

export const RecipientListSchema = {
  type: 'object',
  required: ['domain', 'recipients'],
  properties: {
    domain: { type: 'string', description: 'lower-case A-label form' },
    recipients: {
      type: 'array',
      items: { type: 'string' },
      description: 'entries as `local-part@domain`, where `*` in the local part is a wildcard',
    },
  },
} as const;

export const RecipientEntrySchema = {
  type: 'string',
  minLength: 2,
  maxLength: 320,
  description:
    'an address of the domain (`alice@example.org`) or a local-part pattern ending in `@` ' +
    '(`postmaster@`, `sales-*@`, `*@`), where `*` matches any run of characters',
} as const;

export const DeliveryAttemptSchema = {
  type: 'object',
  required: ['attemptedAt', 'status', 'reply', 'remoteMta'],
  properties: {
    attemptedAt: timestamp,
    status: { type: 'string', enum: ['delivered', 'deferred', 'failed'] },
    reply: {
      type: ['string', 'null'],
      description: "the next hop's reply, or this system's reason when none replied",
    },
    remoteMta: { type: ['string', 'null'], description: 'the next hop that replied' },
  },
} as const;

export const RecipientDetailSchema = {
  type: 'object',
  required: [
    ...RecipientSchema.required,
    'notify',
    'orcpt',
    'enhancedCode',
    'pendingAction',
    'deliveryAttempts',
  ],
  properties: {
    ...RecipientSchema.properties,
    notify: {
      type: ['array', 'null'],
      items: { type: 'string' },
      description: 'RFC 3461 NOTIFY of the recipient, or null when the sender gave none',
    },
    orcpt: { type: ['string', 'null'], description: 'RFC 3461 ORCPT, xtext decoded' },
    enhancedCode: { type: ['string', 'null'], description: 'enhanced status code of lastReply' },
    pendingAction: {
      type: ['string', 'null'],
      enum: ['hold', 'bounce', null],
      description: 'a hold or bounce of an active recipient, applied when its attempt ends',
    },
    deliveryAttempts: {
      type: 'array',
      items: DeliveryAttemptSchema,
      description: 'every attempt, oldest first',
    },
  },
} as const;

export const MessageDetailSchema = {
  type: 'object',
  required: [
    ...MessageSchema.required,
    'kind',
    'dsnOf',
    'ret',
    'envid',
    'bodyType',
    'smtpUtf8',
    'clientAddress',
    'clientName',
    'heloName',
    'bodyStored',
  ],
  properties: {
    ...MessageSchema.properties,
    kind: {
      type: 'string',
      enum: ['mail', 'dsn'],
      description: '`dsn` for a delivery status notification we generated',
    },
    dsnOf: { type: ['string', 'null'], description: 'for a DSN, the queue id it reports on' },
    ret: { type: ['string', 'null'], enum: ['FULL', 'HDRS', null] },
    envid: { type: ['string', 'null'] },
    bodyType: { type: 'string' },
    smtpUtf8: { type: 'boolean' },
    clientAddress: { type: 'string', description: 'IP address of the SMTP client' },
    clientName: { type: ['string', 'null'], description: 'its reverse DNS name' },
    heloName: { type: ['string', 'null'] },
    bodyStored: {
      type: 'boolean',
      description: 'false once every recipient is final and the bytes were deleted',
    },
    recipients: {
      type: 'array',
      items: RecipientDetailSchema,
      description: 'every recipient, or for a member token those of its domain',
    },
  },
} as const;
