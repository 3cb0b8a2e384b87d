/**
 * One mail transaction on an open session: the envelope stage (MAIL FROM and RCPT parameters),
 * the data stage (nodemailer's send() runs MAIL, RCPT, DATA and the message in one call) and
 * the replies it produced, before any recipient is judged.
 */

import { isAscii } from 'node:buffer';
import type { JobMessage } from '@secondary-mx/contracts';
import type SMTPConnection from 'nodemailer/lib/smtp-connection';
import { dsnParameters, type TransactionParameters } from './command-parameters.ts';
import type { LocalFailure, ReplyStage } from './reply-classification.ts';
import type { SmtpSession } from './smtp-session.ts';

type SmtpError = SMTPConnection.SMTPError;

/**
 * The replies of one transaction. `rejected` maps each recipient rejected at RCPT to its own
 * reply, and `accepted` lists those that got 2xx at RCPT.
 * - `completed`: the reply after the final dot (2xx or not) or to DATA;
 * - `mailRejected`: MAIL FROM was rejected, which settles every recipient;
 * - `noRecipients`: every RCPT was rejected;
 * - `lost`: the session broke or timed out, with a 4xx/5xx reply if one came (such as 421) and
 *   the stage of that reply;
 * - `local`: we did not send the message, for the given reason.
 */
export type TransactionResult =
  | { kind: 'completed'; reply: string; accepted: string[]; rejected: Map<string, string> }
  | { kind: 'mailRejected'; reply: string }
  | { kind: 'noRecipients'; rejected: Map<string, string> }
  | {
      kind: 'lost';
      detail: string;
      reply: string | undefined;
      stage: ReplyStage;
      accepted: string[];
      rejected: Map<string, string>;
    }
  | { kind: 'local'; failure: LocalFailure; detail: string };

export interface PreparedEnvelope {
  envelope: SMTPConnection.Envelope;
  parameters: TransactionParameters;
}

/** The recipient bookkeeping nodemailer adds to the envelope object it is given. */
interface EnvelopeBookkeeping {
  accepted?: string[];
  rejectedErrors?: SmtpError[];
}

const HEADER_END = Buffer.from('\r\n\r\n');

function hasNonAscii(bytes: Buffer | string): boolean {
  const buffer = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
  return buffer.some((byte) => byte >= 0x80);
}

/**
 * Returns whether the message needs SMTPUTF8: a non-ASCII envelope address or header. An 8-bit
 * body alone needs only 8BITMIME (RFC 6531 and RFC 6532 cover addresses and headers).
 */
export function needsSmtpUtf8(message: JobMessage, payload: Buffer): boolean {
  if (
    hasNonAscii(message.sender) ||
    message.recipients.some((recipient) => hasNonAscii(recipient.address))
  ) {
    return true;
  }
  const end = payload.indexOf(HEADER_END);
  return hasNonAscii(end >= 0 ? payload.subarray(0, end) : payload);
}

/**
 * Envelope stage: the envelope with the original sender (`''` is the null sender, which
 * nodemailer sends as `MAIL FROM:<>`), every recipient, SIZE, BODY=8BITMIME and the DSN
 * parameters. BODY=8BITMIME goes out when the client declared it or the bytes contain 8-bit
 * data, and the server offers 8BITMIME. Returns a local failure when the message needs
 * SMTPUTF8 and the server lacks it, or contains 8-bit data and the server lacks 8BITMIME.
 */
export function prepareEnvelope(
  message: JobMessage,
  payload: Buffer,
  session: SmtpSession,
): PreparedEnvelope | Extract<TransactionResult, { kind: 'local' }> {
  if (
    message.smtpUtf8 &&
    !session.parameters.supports('SMTPUTF8') &&
    needsSmtpUtf8(message, payload)
  ) {
    return {
      kind: 'local',
      failure: 'smtpUtf8Unsupported',
      detail: `SMTPUTF8 is required, but was not offered by ${session.target.host}`,
    };
  }
  const eightBit = !isAscii(payload);
  if (eightBit && !session.parameters.supports('8BITMIME')) {
    // RFC 6152 section 3: a relay must not send 8-bit data to a server without 8BITMIME. It
    // must convert the message or treat this as a permanent failure. Message bytes are
    // delivered exactly as received, so the recipients fail and the sender gets a DSN.
    return {
      kind: 'local',
      failure: 'conversionRequired',
      detail: `conversion required but not supported: the message contains 8-bit data, and ${session.target.host} does not offer 8BITMIME`,
    };
  }
  const dsn =
    message.ret !== undefined || message.envid !== undefined
      ? { ret: message.ret, envid: message.envid }
      : undefined;
  const recipientParameters = new Map<string, string[]>();
  for (const recipient of message.recipients) {
    recipientParameters.set(recipient.address.trim(), dsnParameters(recipient));
  }
  return {
    envelope: {
      from: message.sender,
      to: message.recipients.map((recipient) => recipient.address),
      size: payload.length,
      use8BitMime: message.bodyType === '8BITMIME' || eightBit,
      dsn,
    },
    parameters: { smtpUtf8: message.smtpUtf8, recipientParameters },
  };
}

function rejectedReplies(bookkeeping: EnvelopeBookkeeping): Map<string, string> {
  const rejected = new Map<string, string>();
  for (const error of bookkeeping.rejectedErrors ?? []) {
    const recipient = (error as SmtpError & { recipient?: string }).recipient;
    if (recipient !== undefined && typeof error.response === 'string') {
      rejected.set(recipient, error.response);
    }
  }
  return rejected;
}

/** Stage of the reply that ended a send(), by the `command` of nodemailer's error. */
const STAGE_BY_COMMAND: Record<string, ReplyStage> = {
  CONN: 'greeting',
  EHLO: 'ehlo',
  HELO: 'ehlo',
  LHLO: 'ehlo',
  STARTTLS: 'starttls',
  'MAIL FROM': 'mail',
  'RCPT TO': 'rcpt',
  DATA: 'data',
};

/** Sorts a send() error into a result, using the RCPT replies nodemailer recorded on the envelope. */
function resultOfError(error: SmtpError, bookkeeping: EnvelopeBookkeeping): TransactionResult {
  const response =
    typeof error.response === 'string' && error.response !== '' ? error.response : undefined;
  const rejected = rejectedReplies(bookkeeping);
  const accepted = bookkeeping.accepted ?? [];
  if (error.command === 'API' && error.code === 'EENVELOPE') {
    return { kind: 'local', failure: 'invalidAddress', detail: error.message };
  }
  if (error.command === 'MAIL FROM' && error.code === 'EMESSAGE' && response === undefined) {
    // nodemailer rejects a message over the SIZE limit of the EHLO reply before MAIL FROM.
    return { kind: 'local', failure: 'messageTooBig', detail: error.message };
  }
  const replied =
    (error.code === 'EENVELOPE' || error.code === 'EMESSAGE') && response !== undefined;
  if (replied && error.command === 'MAIL FROM') {
    return { kind: 'mailRejected', reply: response };
  }
  if (replied && error.command === 'RCPT TO') {
    return { kind: 'noRecipients', rejected };
  }
  if (replied && error.command === 'DATA') {
    return { kind: 'completed', reply: response, accepted, rejected };
  }
  const reply = response !== undefined && /^[45]\d\d/.test(response) ? response : undefined;
  const stage = STAGE_BY_COMMAND[error.command ?? ''] ?? 'data';
  return { kind: 'lost', detail: error.message, reply, stage, accepted, rejected };
}

/**
 * Data stage: sends the stored bytes unchanged apart from SMTP's dot-stuffing. nodemailer also
 * turns a bare CR or LF into CRLF, which SMTP requires. Settles as `lost` when the session ends
 * or `timeoutMs` passes first, closing the session in the second case.
 */
export function sendMessage(
  session: SmtpSession,
  prepared: PreparedEnvelope,
  payload: Buffer,
  timeoutMs: number,
): Promise<TransactionResult> {
  const bookkeeping = prepared.envelope as EnvelopeBookkeeping;
  session.transactions += 1;
  session.parameters.set(prepared.parameters);
  return new Promise((resolve) => {
    let settled = false;
    const settle = (result: TransactionResult) => {
      if (settled) {
        return;
      }
      settled = true;
      clearTimeout(timer);
      stopWatching();
      session.parameters.set(undefined);
      resolve(result);
    };
    const lost = (detail: string): TransactionResult => ({
      kind: 'lost',
      detail,
      reply: undefined,
      stage: 'data',
      accepted: bookkeeping.accepted ?? [],
      rejected: rejectedReplies(bookkeeping),
    });
    const timer = setTimeout(() => {
      settle(lost(`delivery timed out after ${timeoutMs} ms`));
      session.close();
    }, timeoutMs);
    // nodemailer ends the session before it calls back with the error that ended it, so the
    // callback gets one turn of the event loop to report the real cause.
    const stopWatching = session.onEnd(() => {
      setImmediate(() => settle(lost('connection closed during the transaction')));
    });
    session.connection.send(prepared.envelope, payload, (error, info) => {
      if (error) {
        settle(resultOfError(error, bookkeeping));
        return;
      }
      settle({
        kind: 'completed',
        reply: info.response,
        accepted: info.accepted,
        rejected: rejectedReplies(info),
      });
    });
  });
}
