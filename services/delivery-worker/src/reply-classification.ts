/**
 * Turns SMTP replies, and failures that produced no reply, into a recipient's verdict. Every rule
 * is a table entry here, so the rest of the worker never inspects reply codes itself.
 */
import type { RecipientOutcome } from '@secondary-mx/contracts';

export type DeliveryStatus = RecipientOutcome['status'];
export type FailureKind = NonNullable<RecipientOutcome['failureKind']>;

export interface ReplyVerdict {
  status: DeliveryStatus;
  /** The reply on one line, as the remote server gave it or as we describe a local failure. */
  reply: string;
  /** RFC 3463 status code such as 4.2.1. */
  enhancedCode: string;
  /**
   * Set on every deferral: `reply` when the server's reply concerns the recipient or the
   * message, `connection` when the next hop is unavailable. That is the case when no server
   * replied (DNS, connect, lost connection, lease, or an error in this worker) and for the
   * service-level replies of CONNECTION_REPLIES.
   */
  failureKind?: FailureKind;
}

/** The command, or the greeting, that a remote reply responds to. */
export type ReplyStage = 'greeting' | 'ehlo' | 'starttls' | 'mail' | 'rcpt' | 'data';

/**
 * Temporary replies that mean the next hop is unavailable, not the recipient. Recipients deferred
 * by them are made due again by the next success to their domain, like those of a refused
 * connection.
 * - 421 at any stage: in RFC 5321, service not available, closing transmission channel;
 * - any 4xx before the first RCPT: nothing about a recipient was asked yet.
 * Other 4xx replies to RCPT or after DATA (452 mailbox full, 450 greylisted) stay `reply`.
 */
const CONNECTION_REPLIES: readonly { stages: readonly ReplyStage[]; codes: RegExp }[] = [
  { stages: ['greeting', 'ehlo', 'starttls', 'mail', 'rcpt', 'data'], codes: /^421$/ },
  { stages: ['greeting', 'ehlo', 'starttls', 'mail'], codes: /^4\d\d$/ },
];

/** RFC 5321 section 4.2.1: the first digit of a reply code gives its class. */
const STATUS_BY_CLASS: Record<string, DeliveryStatus> = {
  '2': 'delivered',
  '4': 'deferred',
  '5': 'failed',
};

/** A reply of any other class (1xx, 3xx after the final dot) is a protocol error; we retry later. */
const UNKNOWN_CLASS = { status: 'deferred', enhancedClass: '4' } as const;

/** Failures without a usable reply, with the reply code and RFC 3463 code we report for them. */
export const LOCAL_FAILURES = {
  /** No connection to any address of the next hops (X.4.1 no answer from host). */
  connectFailed: { code: 451, enhancedCode: '4.4.1' },
  /** The connection broke or timed out during the transaction (X.4.2 bad connection). */
  connectionLost: { code: 451, enhancedCode: '4.4.2' },
  /** DNS timed out or failed (X.4.3 directory server failure). */
  dnsFailed: { code: 451, enhancedCode: '4.4.3' },
  /**
   * DNS has no address for the domain or its MX hosts (X.4.4 unable to route). Temporary, because
   * a member's domain with a DNS mistake must wait for the fix rather than bounce.
   */
  noRoute: { code: 451, enhancedCode: '4.4.4' },
  /** Every next hop is ourselves (X.4.6 routing loop detected). */
  loopsBack: { code: 451, enhancedCode: '4.4.6' },
  /** The next-hop override of the domain is unusable (X.3.5 system incorrectly configured). */
  misconfigured: { code: 451, enhancedCode: '4.3.5' },
  /**
   * The domain publishes a null MX (RFC 7505) and accepts no mail (X.1.10 recipient address has
   * null MX). NOTE: some implementations report reply code 556 (RFC 7504) here instead of 550.
   */
  nullMx: { code: 550, enhancedCode: '5.1.10' },
  /** The message is larger than the SIZE limit the next hop announced (X.3.4 message too big). */
  messageTooBig: { code: 552, enhancedCode: '5.3.4' },
  /** RFC 6531: a message that needs SMTPUTF8 must not go to a server that lacks the extension. */
  smtpUtf8Unsupported: { code: 550, enhancedCode: '5.6.7' },
  /**
   * The message contains 8-bit data and the server lacks 8BITMIME, and we do not convert
   * messages (X.6.3 conversion required but not supported).
   */
  conversionRequired: { code: 554, enhancedCode: '5.6.3' },
  /**
   * The job's lease ran out before this message's transaction started (X.4.7 delivery time
   * expired), so another lease may already carry the same recipients.
   */
  leaseExpired: { code: 451, enhancedCode: '4.4.7' },
  /**
   * The job's lease has less time left than a message may take, so the message was not started
   * and its recipients go back to queue-store untried (X.4.7 delivery time expired).
   */
  notAttempted: { code: 451, enhancedCode: '4.4.7', failureKind: 'notAttempted' },
  /** An unexpected error in this worker (X.3.0 other mail system status); it is logged. */
  internalError: { code: 451, enhancedCode: '4.3.0' },
  /** nodemailer rejected an address before sending it (X.1.3 bad destination mailbox syntax). */
  invalidAddress: { code: 553, enhancedCode: '5.1.3' },
} as const;

export type LocalFailure = keyof typeof LOCAL_FAILURES;

/** The limit of RecipientOutcome.reply. */
const MAX_REPLY_LENGTH = 2000;

const REPLY_LINE = /^(\d{3})(?:[ -](.*))?$/;
const ENHANCED_CODE = /^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)/;

function truncate(text: string): string {
  return text.length <= MAX_REPLY_LENGTH ? text : `${text.slice(0, MAX_REPLY_LENGTH - 3)}...`;
}

export interface ParsedReply {
  code: number;
  /** The enhanced code from the first line, if the server gave one. */
  enhancedCode: string | undefined;
  /** The text of every line joined by spaces, the first line's enhanced code included. */
  text: string;
}

/**
 * Parses a reply as nodemailer hands it over: lines joined by `\n`, each starting with the code.
 * Returns undefined when the first line does not start with a three-digit code.
 */
export function parseReply(raw: string): ParsedReply | undefined {
  const lines = raw.split(/\r?\n/).filter((line) => line.trim() !== '');
  const first = REPLY_LINE.exec(lines[0]?.trim() ?? '');
  if (!first) {
    return undefined;
  }
  const enhancedCode = ENHANCED_CODE.exec(first[2] ?? '')?.[0];
  const texts = [first[2] ?? ''];
  for (const line of lines.slice(1)) {
    let text = REPLY_LINE.exec(line.trim())?.[2] ?? line.trim();
    if (enhancedCode !== undefined && text.startsWith(enhancedCode)) {
      text = text.slice(enhancedCode.length).trimStart();
    }
    texts.push(text);
  }
  return { code: Number(first[1]), enhancedCode, text: texts.join(' ').trim() };
}

/**
 * Returns the enhanced code with the class of the reply code, which decides the status. A server
 * that gave none gets `<class>.0.0`, and one of another class (`450 5.1.1`) gets its class fixed.
 */
function enhancedCodeFor(parsed: ParsedReply, enhancedClass: string): string {
  const match =
    parsed.enhancedCode === undefined ? undefined : ENHANCED_CODE.exec(parsed.enhancedCode);
  if (!match) {
    return `${enhancedClass}.0.0`;
  }
  return `${enhancedClass}.${match[2]}.${match[3]}`;
}

/** Returns the failure kind of a deferral by a remote reply to `stage`. */
function remoteFailureKind(code: number, stage: ReplyStage): FailureKind {
  const unavailable = CONNECTION_REPLIES.some(
    (rule) => rule.stages.includes(stage) && rule.codes.test(String(code)),
  );
  return unavailable ? 'connection' : 'reply';
}

/** Judges a parsed remote reply to `stage`: 2xx delivered, 4xx deferred, 5xx failed. */
export function classifyReply(parsed: ParsedReply, stage: ReplyStage): ReplyVerdict {
  const replyClass = String(parsed.code).charAt(0);
  const status = STATUS_BY_CLASS[replyClass];
  const known = status !== undefined;
  const verdict: ReplyVerdict = {
    status: status ?? UNKNOWN_CLASS.status,
    reply: truncate(`${parsed.code} ${parsed.text}`.trim()),
    enhancedCode: enhancedCodeFor(parsed, known ? replyClass : UNKNOWN_CLASS.enhancedClass),
  };
  if (verdict.status === 'deferred') {
    verdict.failureKind = remoteFailureKind(parsed.code, stage);
  }
  return verdict;
}

/** Describes a failure that produced no remote reply, as a reply of our own. */
export function localVerdict(failure: LocalFailure, text: string): ReplyVerdict {
  const entry: { code: number; enhancedCode: string; failureKind?: FailureKind } =
    LOCAL_FAILURES[failure];
  const { code, enhancedCode } = entry;
  const verdict: ReplyVerdict = {
    status: STATUS_BY_CLASS[String(code).charAt(0)] ?? UNKNOWN_CLASS.status,
    reply: truncate(`${code} ${enhancedCode} ${text}`),
    enhancedCode,
  };
  if (verdict.status === 'deferred') {
    verdict.failureKind = entry.failureKind ?? 'connection';
  }
  return verdict;
}
