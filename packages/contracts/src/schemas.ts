/**
 * Runtime-validated payloads of every RabbitMQ message. A consumer parses what it receives
 * with these schemas; anything that does not match is rejected without being acted on.
 */
import { z } from 'zod';

/** The closed set of recipient states, used alike in the database, logs, metrics and API. */
export const RECIPIENT_STATES = [
  'queued',
  'active',
  'deferred',
  'hold',
  'delivered',
  'failed',
  'expired',
] as const;
export type RecipientState = (typeof RECIPIENT_STATES)[number];
export const FINAL_STATES: readonly RecipientState[] = ['delivered', 'failed', 'expired'];
export const WAITING_STATES: readonly RecipientState[] = ['queued', 'deferred'];

/**
 * Member domain states: `pending` until an administrator approves the request, `approved` while
 * ingress relays for it, `suspended` while ingress rejects its recipients with a temporary error
 * but its waiting mail is still delivered. A removed domain has no row and no state.
 */
export const DOMAIN_STATES = ['pending', 'approved', 'suspended'] as const;
export type DomainState = (typeof DOMAIN_STATES)[number];

const NotifySchema = z.array(z.enum(['NEVER', 'SUCCESS', 'FAILURE', 'DELAY'])).min(1);

export const EnvelopeRecipientSchema = z.object({
  address: z.string().min(1).max(320),
  /** RFC 3461 NOTIFY, absent when the client gave none. */
  notify: NotifySchema.optional(),
  /** RFC 3461 ORCPT as `addr-type;xtext-decoded address`. */
  orcpt: z.string().max(500).optional(),
});
export type EnvelopeRecipient = z.infer<typeof EnvelopeRecipientSchema>;

export const BodyTypeSchema = z.enum(['7BIT', '8BITMIME']);

/** Header of a spool.store request; the frame's payload is the message with our Received: line. */
export const SpoolStoreRequestSchema = z.object({
  queueId: z.string().min(1).max(64),
  session: z.string().max(64),
  /** Empty string for the null reverse-path `<>`. */
  sender: z.string().max(320),
  recipients: z.array(EnvelopeRecipientSchema).min(1),
  ret: z.enum(['FULL', 'HDRS']).optional(),
  envid: z.string().max(100).optional(),
  bodyType: BodyTypeSchema,
  smtpUtf8: z.boolean(),
  clientAddress: z.string(),
  clientName: z.string().optional(),
  heloName: z.string().optional(),
  receivedAt: z.string(),
  /** Epoch milliseconds after which ingress no longer waits for the reply. */
  deadline: z.number(),
});
export type SpoolStoreRequest = z.infer<typeof SpoolStoreRequestSchema>;

export const SpoolStoreReplySchema = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), queueId: z.string() }),
  z.object({ ok: z.literal(false), error: z.string() }),
]);
export type SpoolStoreReply = z.infer<typeof SpoolStoreReplySchema>;

export const GreylistCheckRequestSchema = z.object({
  session: z.string().max(64),
  clientAddress: z.string().min(1).max(64),
  /** The client's forward-confirmed reverse DNS name; absent when it has none. */
  clientName: z.string().max(255).optional(),
  /** The name the client gave in EHLO or HELO, for the SPF check. */
  heloName: z.string().max(255).optional(),
  /** Empty string for the null reverse-path `<>`. */
  sender: z.string().max(320),
  recipient: z.string().min(1).max(320),
});
export type GreylistCheckRequest = z.infer<typeof GreylistCheckRequestSchema>;

/** Every reason a greylist verdict gives; see GreylistCheckReplySchema's `reason`. */
export const GREYLIST_REASONS = [
  'new',
  'too-early',
  'retried',
  'no-delay',
  'whitelisted',
  'auto-whitelisted',
  'whitelisted-client',
  'whitelisted-name',
  'whitelisted-sender',
  'invalid-request',
] as const;

export const GreylistCheckReplySchema = z.object({
  action: z.enum(['pass', 'defer']),
  /** Seconds until a retry can pass, for `defer`. */
  retryAfter: z.number().int().nonnegative().optional(),
  /**
   * Why: `new`, `too-early`, `retried` (first pass), `no-delay`, `whitelisted` (a triplet that
   * passed before), `auto-whitelisted` (its client group), `whitelisted-client`,
   * `whitelisted-name`, `whitelisted-sender` (the static whitelists), `invalid-request`.
   */
  reason: z.string(),
  /**
   * Seconds the triplet waited between first attempt and first pass, on the first pass only
   * (`retried`, or 0 for `no-delay`).
   */
  delayed: z.number().int().nonnegative().optional(),
});
export type GreylistCheckReply = z.infer<typeof GreylistCheckReplySchema>;

export const GREYLIST_WHITELIST_KINDS = ['client', 'name', 'sender'] as const;
export type GreylistWhitelistKind = (typeof GREYLIST_WHITELIST_KINDS)[number];

/** One static whitelist entry: from a setting, or added through greylist.admin and kept in Redis. */
export const GreylistWhitelistEntrySchema = z.object({
  kind: z.enum(GREYLIST_WHITELIST_KINDS),
  /**
   * In normalized form. `client`: a network in CIDR notation (`192.0.2.0/24`, `2001:db8::1/128`).
   * `name`: a suffix of forward-confirmed client names (`relay.example`). `sender`: an address
   * (`alice@example.com`) or a domain with its subdomains (`@example.com`).
   */
  value: z.string(),
  note: z.string().optional(),
  /** ISO 8601 time the entry was added; absent for entries from settings. */
  createdAt: z.string().optional(),
  source: z.enum(['setting', 'api']),
});
export type GreylistWhitelistEntry = z.infer<typeof GreylistWhitelistEntrySchema>;

const GreylistWhitelistValueSchema = z.string().min(1).max(320);

/** Request of the greylist.admin RPC, which the greylist service serves. */
export const GreylistAdminRequestSchema = z.discriminatedUnion('action', [
  /** Reports the state of one triplet as a check would see it, without recording an attempt. */
  z.object({
    action: z.literal('lookup'),
    clientAddress: z.string().min(1).max(64),
    /** The forward-confirmed reverse DNS name the client would have; absent for none. */
    clientName: z.string().max(255).optional(),
    heloName: z.string().max(255).optional(),
    /** Empty string for the null reverse-path `<>`. */
    sender: z.string().max(320),
    recipient: z.string().min(1).max(320),
  }),
  z.object({ action: z.literal('whitelist.list') }),
  z.object({
    action: z.literal('whitelist.add'),
    kind: z.enum(GREYLIST_WHITELIST_KINDS),
    value: GreylistWhitelistValueSchema,
    note: z.string().max(200).optional(),
  }),
  z.object({
    action: z.literal('whitelist.remove'),
    kind: z.enum(GREYLIST_WHITELIST_KINDS),
    value: GreylistWhitelistValueSchema,
  }),
]);
export type GreylistAdminRequest = z.infer<typeof GreylistAdminRequestSchema>;

/** Times are ISO 8601 and taken from the Redis server clock, as checks take them. */
export const GreylistTripletStateSchema = z.object({
  /**
   * `unknown`: no attempt within the retry window. `waiting`: deferred, passes after
   * `passAfter`. `passed`: a retry passed, so the triplet passes at once until `expiresAt`.
   * `whitelisted`: passes without a triplet record, see `reason`.
   */
  state: z.enum(['unknown', 'waiting', 'passed', 'whitelisted']),
  /**
   * For `whitelisted`: `whitelisted-client`, `whitelisted-name`, `whitelisted-sender` (see
   * `whitelistEntry`) or `auto-whitelisted` (the client group).
   */
  reason: z.string().optional(),
  whitelistEntry: GreylistWhitelistEntrySchema.optional(),
  /** First attempt of a `waiting` or `passed` triplet. */
  firstSeen: z.string().optional(),
  /** Earliest retry that passes, for `waiting`. */
  passAfter: z.string().optional(),
  /** Latest pass, for `passed`. */
  lastPassed: z.string().optional(),
  /** When the record lapses: end of the retry window, of the maximum age, or of the group's. */
  expiresAt: z.string().optional(),
  /** `spf:<domain>`, `name:<organizational domain>` or `net:<cidr>`. */
  clientGroup: z.string(),
  /** The sender as the key contains it, after normalization. */
  sender: z.string(),
  recipient: z.string(),
  /** SPF result of the sender domain for the client, which decides an `spf:` group. */
  spf: z.string(),
  /** Redis key of the triplet record. */
  key: z.string(),
  /** Redis key of the client group's auto-whitelist counter. */
  groupKey: z.string(),
  /** Passes of the client group counted toward the auto-whitelist. */
  groupPasses: z.number().int().nonnegative(),
  /** Counted passes after which the group is auto-whitelisted; 0 when it never is. */
  autoWhitelistAfter: z.number().int().nonnegative(),
});
export type GreylistTripletState = z.infer<typeof GreylistTripletStateSchema>;

export const GreylistLookupReplySchema = z.object({
  ok: z.literal(true),
  lookup: GreylistTripletStateSchema,
});

export const GreylistWhitelistListReplySchema = z.object({
  ok: z.literal(true),
  entries: z.array(GreylistWhitelistEntrySchema),
});

/** Reply to whitelist.add and whitelist.remove. */
export const GreylistWhitelistChangeReplySchema = z.object({
  ok: z.literal(true),
  /** The entry added, or found already listed, or removed. */
  entry: GreylistWhitelistEntrySchema,
  /** False when an added entry was already listed. */
  changed: z.boolean(),
});

/**
 * A greylist.admin request that failed. `invalid`: a value is not valid. `not-found`: no such
 * entry. `conflict`: the entry comes from a setting or the list is full. `unavailable`: Redis
 * failed.
 */
export const GreylistAdminErrorSchema = z.object({
  ok: z.literal(false),
  error: z.enum(['invalid', 'not-found', 'conflict', 'unavailable']),
  message: z.string(),
});
export type GreylistAdminError = z.infer<typeof GreylistAdminErrorSchema>;

export const RECIPIENT_CHECKS = ['none', 'list', 'verify'] as const;
export type RecipientCheck = (typeof RECIPIENT_CHECKS)[number];

/** Policy that ingress applies to the recipients of one approved domain at RCPT time. */
export const DomainPolicySchema = z.object({
  /**
   * `none` accepts every local part, `list` only those matching `recipients`, `verify` checks
   * each recipient with the primary at RCPT time.
   */
  recipientCheck: z.enum(RECIPIENT_CHECKS),
  /** Local-part patterns for `list`: `*` matches any run of characters, including none. */
  recipients: z.array(z.string()),
  localPartCaseSensitive: z.boolean(),
  /** False skips the greylist check for the domain's recipients. */
  greylist: z.boolean(),
  /** Next hops set by an administrator, which `verify` contacts as deliveries would. */
  primaryHosts: z.array(z.string()),
});
export type DomainPolicy = z.infer<typeof DomainPolicySchema>;

export const DomainsListReplySchema = z.object({
  approved: z.array(z.string()),
  /** Suspended domains, whose recipients ingress rejects with a temporary error. */
  suspended: z.array(z.string()).default([]),
  /**
   * Policy by approved domain. A domain without an entry has the defaults: no recipient check,
   * greylisting on.
   */
  policies: z.record(z.string(), DomainPolicySchema).default({}),
});
export type DomainsListReply = z.infer<typeof DomainsListReplySchema>;

export const RecipientVerifyRequestSchema = z.object({
  session: z.string().max(64),
  /** The recipient as given at RCPT, with the domain in lower-case A-label form. */
  recipient: z.string().min(1).max(320),
  domain: z.string().min(1).max(253),
  primaryHosts: z.array(z.string()),
  /** Epoch milliseconds after which the reply is of no use and the request is dropped. */
  deadline: z.number(),
});
export type RecipientVerifyRequest = z.infer<typeof RecipientVerifyRequestSchema>;

/**
 * The primary's verdict on one recipient: `valid` for 2xx to RCPT, `invalid` for 5xx, `unknown`
 * when no next hop answered RCPT (4xx, no connection, DNS failure, timeout).
 */
export const RecipientVerifyReplySchema = z.object({
  result: z.enum(['valid', 'invalid', 'unknown']),
  /** The reply to RCPT on one line, or why there was none. */
  reply: z.string().max(2000),
  /** Host name of the next hop that replied to RCPT. */
  remoteMta: z.string().optional(),
});
export type RecipientVerifyReply = z.infer<typeof RecipientVerifyReplySchema>;

export const JobRecipientSchema = EnvelopeRecipientSchema.extend({
  id: z.string(),
});
export type JobRecipient = z.infer<typeof JobRecipientSchema>;

/** One message of a delivery job. */
export const JobMessageSchema = z.object({
  queueId: z.string(),
  sender: z.string(),
  recipients: z.array(JobRecipientSchema).min(1),
  ret: z.enum(['FULL', 'HDRS']).optional(),
  envid: z.string().optional(),
  bodyType: BodyTypeSchema,
  smtpUtf8: z.boolean(),
  /** Bytes of this message in the frame payload, where the messages follow each other in order. */
  size: z.number().int().nonnegative(),
});
export type JobMessage = z.infer<typeof JobMessageSchema>;

/**
 * Header of a delivery job: messages to one destination domain, delivered over one SMTP
 * connection that is closed before the result is published. The frame's payload is the
 * stored bytes of the messages, concatenated in order. Limiting the jobs in flight per domain
 * therefore limits the connections to its next hop.
 */
export const DeliveryJobSchema = z.object({
  kind: z.literal('delivery'),
  /** Unique per lease; the result quotes it so a stale lease cannot overwrite a newer one. */
  leaseId: z.string(),
  leaseUntil: z.number(),
  domain: z.string(),
  /** Next hops set by an administrator (`host` or `host:port`); empty means use DNS. */
  primaryHosts: z.array(z.string()),
  messages: z.array(JobMessageSchema).min(1),
});
export type DeliveryJob = z.infer<typeof DeliveryJobSchema>;

/** A probe: connect to the domain's next hop and say EHLO, without sending mail. */
export const ProbeJobSchema = z.object({
  kind: z.literal('probe'),
  probeId: z.string(),
  domain: z.string(),
  primaryHosts: z.array(z.string()),
  /** Epoch milliseconds after which the probe is pointless and is dropped. */
  deadline: z.number(),
});
export type ProbeJob = z.infer<typeof ProbeJobSchema>;

export const JobSchema = z.discriminatedUnion('kind', [DeliveryJobSchema, ProbeJobSchema]);
export type Job = z.infer<typeof JobSchema>;

export const RecipientOutcomeSchema = z.object({
  recipientId: z.string(),
  queueId: z.string(),
  status: z.enum(['delivered', 'deferred', 'failed']),
  /** The remote reply, or our own description when there was none (connection refused, ...). */
  reply: z.string().max(2000),
  /** RFC 3463 status code such as 5.1.1. */
  enhancedCode: z.string().optional(),
  /** The host that gave the reply, if any. */
  remoteMta: z.string().optional(),
  /**
   * For a deferral: `connection` when the next hop is unavailable, because no server responded
   * (DNS failure, connection refused or lost, timeout) or it replied 421, or 4xx before RCPT.
   * `reply` when a server replied 4xx about the recipient or the message. Only the first kind
   * is retried early when the next hop comes back. `notAttempted` when the worker handed the
   * recipient back untried, because its lease had too little time left for the message: it is
   * due again at once, and no attempt is counted or recorded.
   */
  failureKind: z.enum(['connection', 'reply', 'notAttempted']).optional(),
  /** For a delivery: the next hop advertised DSN and got the NOTIFY, ORCPT, RET and ENVID. */
  remoteDsn: z.boolean().optional(),
});
export type RecipientOutcome = z.infer<typeof RecipientOutcomeSchema>;

export const DeliveryResultSchema = z.object({
  kind: z.literal('delivery'),
  leaseId: z.string(),
  domain: z.string(),
  attemptedAt: z.number(),
  outcomes: z.array(RecipientOutcomeSchema).min(1),
});
export type DeliveryResult = z.infer<typeof DeliveryResultSchema>;

export const ProbeResultSchema = z.object({
  kind: z.literal('probe'),
  probeId: z.string(),
  domain: z.string(),
  /** True when a next hop answered the greeting and EHLO with 2xx. */
  ok: z.boolean(),
  reply: z.string().max(2000),
  remoteMta: z.string().optional(),
  attemptedAt: z.number(),
});
export type ProbeResult = z.infer<typeof ProbeResultSchema>;

export const ResultSchema = z.discriminatedUnion('kind', [DeliveryResultSchema, ProbeResultSchema]);
export type Result = z.infer<typeof ResultSchema>;

export const ControlEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('domains.changed'), domain: z.string().optional() }),
  z.object({ type: z.literal('flush'), domain: z.string() }),
  // An administrator made recipients due or bounced them: queue-store runs a scheduler pass
  // and queues the pending DSNs now instead of at its next interval.
  z.object({ type: z.literal('queue.changed') }),
]);
export type ControlEvent = z.infer<typeof ControlEventSchema>;

/** Parses a control event; returns undefined for anything that is not one. */
export function parseControlEvent(content: Buffer): ControlEvent | undefined {
  try {
    const parsed = ControlEventSchema.safeParse(JSON.parse(content.toString('utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
