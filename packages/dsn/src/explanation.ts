/**
 * The human-readable first part of the DSN (RFC 6522 section 3), written for a sender who does
 * not read SMTP replies every day.
 */
import { cleanText, formatDate } from './fields.ts';
import type { DsnAction, DsnInput, DsnRecipient } from './types.ts';
import { decodeXtext } from './xtext.ts';

const TEXT_WIDTH = 76;
/** Longer words are cut, so that a 7bit line stays within 998 characters (RFC 5322 2.1.1). */
const MAX_WORD_LENGTH = 900;

/** Actions in the order their sections appear, the most urgent first. */
export const ACTION_ORDER: readonly DsnAction[] = ['failed', 'delayed', 'relayed', 'delivered'];

/**
 * Plain descriptions of the subject.detail part of the status codes that senders meet most
 * often (RFC 3463, X.1.10 from RFC 7505, X.6.7 from RFC 6531).
 */
const STATUS_DETAILS: Record<string, string> = {
  '1.1': 'the recipient address does not exist',
  '1.2': 'the recipient domain does not exist or cannot receive mail',
  '1.3': 'the recipient address is not valid',
  '1.6': 'the recipient has moved and left no forwarding address',
  '1.10': 'the recipient domain does not accept mail',
  '2.1': 'the recipient mailbox is disabled',
  '2.2': 'the recipient mailbox is full',
  '2.3': 'the message is larger than the recipient accepts',
  '3.4': 'the message is too large for the receiving system',
  '4.1': 'the receiving server did not answer',
  '4.2': 'the connection to the receiving server failed',
  '4.4': 'no route to the receiving server was found',
  '4.6': 'the message was caught in a mail loop',
  '4.7': 'delivery time expired',
  '6.7': 'the receiving system does not accept international addresses',
  '7.1': 'the receiving system refused the message by policy',
};

/** RFC 3464 section 2.3.4: the first digit of a status code gives its class. */
const STATUS_CLASSES: Record<string, string> = {
  '2': 'success',
  '4': 'temporary failure',
  '5': 'permanent failure',
};

function describeStatus(status: string): string {
  const [statusClass = '', ...detail] = status.split('.');
  return STATUS_DETAILS[detail.join('.')] ?? STATUS_CLASSES[statusClass] ?? 'unknown status';
}

/** Formats the time between two dates in days, hours and minutes, such as `2 days and 1 hour`. */
export function formatElapsed(from: Date, to: Date): string {
  const totalMinutes = Math.max(0, Math.floor((to.getTime() - from.getTime()) / 60_000));
  const units: [number, string][] = [
    [Math.floor(totalMinutes / 1440), 'day'],
    [Math.floor((totalMinutes % 1440) / 60), 'hour'],
    [totalMinutes % 60, 'minute'],
  ];
  const parts = units
    .filter(([count]) => count > 0)
    .map(([count, unit]) => `${count} ${unit}${count === 1 ? '' : 's'}`);
  if (parts.length === 0) {
    return 'less than a minute';
  }
  const last = parts.pop() as string;
  return parts.length === 0 ? last : `${parts.join(', ')} and ${last}`;
}

/** Wraps a paragraph at spaces to TEXT_WIDTH columns, each line starting with `indent`. */
function wrap(paragraph: string, indent = ''): string[] {
  const lines: string[] = [];
  let line = indent;
  const words = paragraph
    .split(' ')
    .filter((word) => word !== '')
    .flatMap((word) => word.match(new RegExp(`.{1,${MAX_WORD_LENGTH}}`, 'gsu')) ?? []);
  for (const word of words) {
    if (line.length > indent.length && line.length + 1 + word.length > TEXT_WIDTH) {
      lines.push(line);
      line = indent;
    }
    line += line.length > indent.length ? ` ${word}` : word;
  }
  lines.push(line);
  return lines;
}

function countRecipients(count: number): string {
  return count === 1 ? 'the recipient' : `the ${count} recipients`;
}

function retryDeadline(recipients: DsnRecipient[]): string | undefined {
  const deadlines = new Set(
    recipients.flatMap((recipient) =>
      recipient.willRetryUntil ? [formatDate(recipient.willRetryUntil)] : [],
    ),
  );
  if (deadlines.size === 0) {
    return undefined;
  }
  return deadlines.size === 1 ? [...deadlines][0] : 'the date given for each recipient below';
}

function summary(action: DsnAction, recipients: DsnRecipient[], input: DsnInput): string {
  const recipientsText = countRecipients(recipients.length);
  const elapsed = formatElapsed(input.arrivalDate, input.date);
  switch (action) {
    case 'failed':
      return (
        `Your message could not be delivered to ${recipientsText} listed below. ` +
        `We tried for ${elapsed} and have now given up.`
      );
    case 'delayed': {
      const deadline = retryDeadline(recipients);
      const until = deadline ? ` until ${deadline}` : '';
      return (
        `Your message has not been delivered yet to ${recipientsText} listed below. ` +
        `We have been trying for ${elapsed} and will keep trying${until}. ` +
        'No action is needed from you yet.'
      );
    }
    case 'relayed':
      return (
        `Your message was passed on for ${recipientsText} listed below to a system that ` +
        'does not send delivery reports, so you will get no further report about them.'
      );
    case 'delivered':
      return `Your message was delivered to ${recipientsText} listed below.`;
  }
}

const SECTION_TITLES: Record<DsnAction, string> = {
  failed: 'Could not be delivered to:',
  delayed: 'Not delivered yet to:',
  relayed: 'Passed on without delivery reports to:',
  delivered: 'Delivered to:',
};

function originalAddress(recipient: DsnRecipient): string | undefined {
  if (!recipient.originalRecipient) {
    return undefined;
  }
  const separator = recipient.originalRecipient.indexOf(';');
  const encoded = recipient.originalRecipient.slice(separator + 1);
  const address = cleanText(decodeXtext(encoded).toString('utf8'));
  return address.toLowerCase() === recipient.finalRecipient.toLowerCase() ? undefined : address;
}

function recipientLines(recipient: DsnRecipient): string[] {
  const final = cleanText(recipient.finalRecipient);
  const original = originalAddress(recipient);
  const lines = wrap(
    original ? `<${final}> (originally addressed to <${original}>)` : `<${final}>`,
    '  ',
  );
  lines.push(...wrap(`Status: ${recipient.status} (${describeStatus(recipient.status)})`, '    '));
  if (recipient.diagnosticCode) {
    const source = recipient.remoteMta
      ? `Reply from ${cleanText(recipient.remoteMta)}:`
      : 'Reason given by this mail system:';
    lines.push(...wrap(source, '    '));
    lines.push(...wrap(cleanText(recipient.diagnosticCode), '      '));
  }
  if (recipient.lastAttemptDate) {
    lines.push(`    Last attempt: ${formatDate(recipient.lastAttemptDate)}`);
  }
  if (recipient.action === 'delayed' && recipient.willRetryUntil) {
    lines.push(`    We will keep trying until: ${formatDate(recipient.willRetryUntil)}`);
  }
  return lines;
}

/** The amount of the original in the third part, named in the closing sentence of the text. */
export type ReturnedContent = 'full' | 'headers-requested' | 'headers-too-large';

const RETURNED_CONTENT_TEXT: Record<ReturnedContent, string> = {
  full: 'A copy of your message is attached.',
  'headers-requested':
    'The header of your message is attached. The rest of it is not, as requested when it was ' +
    'sent.',
  'headers-too-large':
    'The header of your message is attached. The rest of it is not, because the message is ' +
    'too large to return in full.',
};

/**
 * Writes the explanation: a summary per action, the queue id, every recipient with its status
 * and the remote reply, and what of the original is attached. Lines end with CRLF and wrap at
 * 76 columns. The text is ASCII unless an address or reply from the input is not.
 */
export function explanationText(input: DsnInput, returned: ReturnedContent): string {
  const reportingMta = cleanText(input.reportingMta);
  const lines: string[] = [`This is the mail system at ${reportingMta}.`, ''];
  const groups = ACTION_ORDER.map(
    (action) =>
      [action, input.recipients.filter((recipient) => recipient.action === action)] as const,
  ).filter(([, recipients]) => recipients.length > 0);

  for (const [action, recipients] of groups) {
    lines.push(...wrap(summary(action, recipients, input)), '');
  }
  lines.push(
    ...wrap(
      `Your message reached this system on ${formatDate(input.arrivalDate)}. Its queue ID ` +
        `here is ${cleanText(input.queueId)}. Please quote it if you contact ` +
        `postmaster@${reportingMta} about this message.`,
    ),
    '',
  );
  for (const [action, recipients] of groups) {
    lines.push(SECTION_TITLES[action], '');
    for (const recipient of recipients) {
      lines.push(...recipientLines(recipient), '');
    }
  }
  lines.push(...wrap(RETURNED_CONTENT_TEXT[returned]));
  return `${lines.join('\r\n')}\r\n`;
}
