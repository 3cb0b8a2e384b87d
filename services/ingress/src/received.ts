/**
 * Builds the trace header prepended to every accepted message (RFC 5321 section 4.4):
 *
 *   Received: from helo.example (client.example [192.0.2.1])
 *           by mx2.example.net (secondary-mx) with ESMTPS id 01KBN...
 *           for <user@example.org>; Fri, 04 Dec 2026 10:00:00 +0000
 *
 * The `for` clause names the recipient only when there is exactly one, since the grammar
 * allows a single path and listing several would disclose Bcc recipients.
 */

export interface ReceivedFields {
  heloName: string | undefined;
  clientHostname: string | undefined;
  clientAddress: string;
  hostname: string;
  /** ESMTP, ESMTPS, UTF8SMTP or UTF8SMTPS (RFC 3848, RFC 6531). */
  protocol: string;
  tls?: { protocol: string; cipher: string } | undefined;
  queueId: string;
  recipients: string[];
  date: Date;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** Formats an RFC 5322 date-time in UTC: `Fri, 04 Dec 2026 10:00:00 +0000`. */
export function formatRfc5322Date(date: Date): string {
  const pad = (value: number) => String(value).padStart(2, '0');
  return (
    `${DAYS[date.getUTCDay()]}, ${pad(date.getUTCDate())} ${MONTHS[date.getUTCMonth()]} ` +
    `${date.getUTCFullYear()} ${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:` +
    `${pad(date.getUTCSeconds())} +0000`
  );
}

/** Keeps client-supplied text from breaking the header: no controls, no comment delimiters. */
function sanitize(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it removes.
  return text.replace(/[\x00-\x1f\x7f()\\]/g, '?').slice(0, 255);
}

function clientAddressLiteral(address: string): string {
  const plain = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
  return plain.includes(':') ? `[IPv6:${plain}]` : `[${plain}]`;
}

export function buildReceivedHeader(fields: ReceivedFields): Buffer {
  const literal = clientAddressLiteral(fields.clientAddress);
  const helo = fields.heloName ? sanitize(fields.heloName) : literal;
  const reverse =
    fields.clientHostname && !fields.clientHostname.startsWith('[')
      ? sanitize(fields.clientHostname)
      : 'unknown';
  const lines = [`Received: from ${helo} (${reverse} ${literal})`];
  if (fields.tls) {
    lines.push(
      `\t(using ${sanitize(fields.tls.protocol)} with cipher ${sanitize(fields.tls.cipher)})`,
    );
  }
  const by = `\tby ${fields.hostname} (secondary-mx) with ${fields.protocol} id ${fields.queueId}`;
  const date = formatRfc5322Date(fields.date);
  if (fields.recipients.length === 1) {
    lines.push(by, `\tfor <${fields.recipients[0]}>; ${date}`);
  } else {
    lines.push(`${by}; ${date}`);
  }
  return Buffer.from(`${lines.join('\r\n')}\r\n`, 'utf8');
}

export function transmissionProtocol(secure: boolean, smtpUtf8: boolean, ehlo = true): string {
  if (smtpUtf8) {
    return secure ? 'UTF8SMTPS' : 'UTF8SMTP';
  }
  if (!ehlo) {
    // RFC 3848: a session opened with HELO is plain SMTP.
    return secure ? 'SMTPS' : 'SMTP';
  }
  return secure ? 'ESMTPS' : 'ESMTP';
}
