/**
 * Builds a delivery status notification: a multipart/report (RFC 6522) of report-type
 * delivery-status (RFC 3464), with as much of the original message as the RFC 3461 RET
 * parameter requests.
 */
import { isUtf8 } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { deliveryStatusContent } from './delivery-status.ts';
import { ACTION_ORDER, explanationText, type ReturnedContent } from './explanation.ts';
import {
  asciiHostName,
  cleanText,
  formatDate,
  formatField,
  isAscii,
  replaceControls,
} from './fields.ts';
import { chooseBoundary, encodeQuotedPrintable, hasEightBitBytes, headerSection } from './mime.ts';
import { type Dsn, type DsnAction, type DsnInput, DsnInputError } from './types.ts';

const SUBJECTS: Record<DsnAction, string> = {
  failed: 'Undelivered Mail Returned to Sender',
  delayed: 'Delayed Mail (still being retried)',
  relayed: 'Mail relayed to a system without delivery notifications',
  delivered: 'Successful Mail Delivery Report',
};

/** RFC 3464 section 2.3.4 with RFC 3463: class 2, 4 or 5, and no leading zeros. */
const STATUS_CODE = /^[245]\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/;

const PREAMBLE = 'This is a delivery status notification in MIME format.\r\n';

function requireDate(value: Date | undefined, name: string): void {
  if (value !== undefined && (!(value instanceof Date) || Number.isNaN(value.getTime()))) {
    throw new DsnInputError(`${name} is not a valid date: ${String(value)}`);
  }
}

function validateInput(input: DsnInput): void {
  if (cleanText(input.reportingMta) === '') {
    throw new DsnInputError('reportingMta is empty. Set it to the host name of this server.');
  }
  // RFC 3464 section 2: the DSN goes to the envelope return address, which <> does not give.
  const sender = cleanText(input.sender);
  if (sender === '' || sender === '<>') {
    throw new DsnInputError('sender is empty, and a DSN cannot be sent to the null reverse-path');
  }
  if (input.recipients.length === 0) {
    throw new DsnInputError('recipients is empty, but a DSN must report on at least one recipient');
  }
  if (Number.isNaN(input.fullContentLimit) || input.fullContentLimit < 0) {
    throw new DsnInputError(
      `fullContentLimit must be a number of bytes >= 0, not ${input.fullContentLimit}`,
    );
  }
  requireDate(input.arrivalDate, 'arrivalDate');
  requireDate(input.date, 'date');
  input.recipients.forEach((recipient, index) => {
    const name = `recipients[${index}]`;
    if (cleanText(recipient.finalRecipient) === '') {
      throw new DsnInputError(`${name}.finalRecipient is empty`);
    }
    if (!ACTION_ORDER.includes(recipient.action)) {
      throw new DsnInputError(`${name}.action is invalid: ${String(recipient.action)}`);
    }
    if (!STATUS_CODE.test(recipient.status)) {
      throw new DsnInputError(
        `${name}.status is not an RFC 3463 status code such as 5.1.1: ${recipient.status}`,
      );
    }
    requireDate(recipient.lastAttemptDate, `${name}.lastAttemptDate`);
    requireDate(recipient.willRetryUntil, `${name}.willRetryUntil`);
  });
}

/** Returns the most urgent action among the recipients, which decides the subject. */
function reportAction(input: DsnInput): DsnAction {
  return ACTION_ORDER.find((action) =>
    input.recipients.some((recipient) => recipient.action === action),
  ) as DsnAction;
}

/**
 * Chooses what to return (RFC 3461 section 4.3): RET=HDRS the header, otherwise the whole
 * message when it fits fullContentLimit and its header when it does not. The limit holds for
 * RET=FULL too, as Postfix's bounce_size_limit does, because the sender address of a DSN is
 * easily forged and a DSN must not carry a large message to someone who never sent it.
 */
function returnedContent(input: DsnInput): ReturnedContent {
  if (input.ret === 'HDRS') {
    return 'headers-requested';
  }
  return input.original.length <= input.fullContentLimit ? 'full' : 'headers-too-large';
}

/**
 * Builds the third part. The bytes are returned unchanged, never re-encoded, labeled 8bit when
 * they contain any byte above 127. A header section in UTF-8 marks an internationalized message
 * (RFC 6532), which RFC 6533 section 4 returns as message/global or message/global-headers
 * because message/rfc822 and text/rfc822-headers do not allow it.
 *
 * NOTE: RFC 6533 section 4.5 requires a 7-bit encoding when the return path lacks SMTPUTF8,
 * which this package cannot know. RFC 2045 also calls a part with lines over 998 bytes or NUL
 * bytes binary, and such an original is still labeled 8bit here.
 */
function returnedPart(original: Buffer, returned: ReturnedContent): Buffer {
  const header = headerSection(original);
  const content = returned === 'full' ? original : header;
  const internationalized = hasEightBitBytes(header) && isUtf8(header);
  let mediaType: string;
  if (returned === 'full') {
    mediaType = internationalized ? 'message/global' : 'message/rfc822';
  } else {
    mediaType = internationalized ? 'message/global-headers' : 'text/rfc822-headers';
  }
  let partHeader = formatField('Content-Type', mediaType);
  if (hasEightBitBytes(content)) {
    partHeader += formatField('Content-Transfer-Encoding', '8bit');
  }
  partHeader += formatField(
    'Content-Description',
    returned === 'full' ? 'Original message' : 'Original message header',
  );
  return Buffer.concat([Buffer.from(`${partHeader}\r\n`, 'ascii'), content]);
}

/** Builds the first part, quoted-printable only when the text is not ASCII. */
function textPart(text: string): Buffer {
  const ascii = isAscii(text);
  const header =
    formatField('Content-Type', 'text/plain; charset=utf-8') +
    formatField('Content-Transfer-Encoding', ascii ? '7bit' : 'quoted-printable') +
    formatField('Content-Description', 'Notification');
  return Buffer.from(`${header}\r\n${ascii ? text : encodeQuotedPrintable(text)}`, 'ascii');
}

function deliveryStatusPart(input: DsnInput): Buffer {
  const header =
    formatField('Content-Type', 'message/delivery-status') +
    formatField('Content-Description', 'Delivery report');
  return Buffer.from(`${header}\r\n${deliveryStatusContent(input)}`, 'ascii');
}

/**
 * Returns the first msg-id of the original's Message-ID field, for In-Reply-To and References
 * (RFC 3834 section 3.1.6), or undefined when it has none in ASCII.
 */
function originalMessageId(original: Buffer): string | undefined {
  const header = headerSection(original)
    .toString('latin1')
    .replace(/\r?\n[ \t]/g, ' ');
  const field = /^message-id:[ \t]*(.*)$/im.exec(header);
  const messageId = field?.[1] ? /<[\x21-\x3b\x3d\x3f-\x7e]+>/.exec(field[1]) : null;
  return messageId?.[0];
}

function topLevelHeader(input: DsnInput, subject: string, boundary: string, eightBit: boolean) {
  const host = asciiHostName(input.reportingMta);
  const unique = `${input.date.getTime().toString(36)}.${randomBytes(12).toString('hex')}`;
  const messageId = `<${unique}@${host}>`;
  const inReplyTo = originalMessageId(input.original);
  let header =
    formatField('From', `Mail Delivery System <MAILER-DAEMON@${host}>`) +
    formatField('To', `<${replaceControls(input.sender).trim()}>`) +
    formatField('Subject', subject) +
    formatField('Date', formatDate(input.date)) +
    formatField('Message-ID', messageId);
  if (inReplyTo) {
    header += formatField('In-Reply-To', inReplyTo) + formatField('References', inReplyTo);
  }
  // RFC 3834 section 3.1.7: every automatic response should carry Auto-Submitted: auto-replied.
  header +=
    formatField('Auto-Submitted', 'auto-replied') +
    formatField('X-Original-Queue-ID', cleanText(input.queueId)) +
    formatField('MIME-Version', '1.0') +
    formatField(
      'Content-Type',
      `multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    );
  // RFC 2045 section 6.4 allows only 7bit, 8bit or binary on a multipart. 8-bit parts need 8bit.
  if (eightBit) {
    header += formatField('Content-Transfer-Encoding', '8bit');
  }
  return header;
}

/**
 * Builds a DSN for one message and one event, listing every recipient in `input.recipients`.
 * Throws DsnInputError for input that cannot give a valid DSN, such as an empty sender or a
 * status that is not an RFC 3463 code.
 */
export function buildDsn(input: DsnInput): Dsn {
  validateInput(input);
  const subject = SUBJECTS[reportAction(input)];
  const returned = returnedContent(input);
  const parts = [
    textPart(explanationText(input, returned)),
    deliveryStatusPart(input),
    returnedPart(input.original, returned),
  ];
  const boundary = chooseBoundary(parts);
  const eightBit = parts.some(hasEightBitBytes);
  const header = topLevelHeader(input, subject, boundary, eightBit);

  const chunks: Buffer[] = [Buffer.from(`${header}\r\n${PREAMBLE}`, 'utf8')];
  for (const part of parts) {
    chunks.push(Buffer.from(`\r\n--${boundary}\r\n`, 'ascii'), part);
  }
  chunks.push(Buffer.from(`\r\n--${boundary}--\r\n`, 'ascii'));
  const message = Buffer.concat(chunks);

  return {
    message,
    bodyType: hasEightBitBytes(message) ? '8BITMIME' : '7BIT',
    smtpUtf8: !isAscii(header),
    subject,
  };
}
