/** MIME helpers for assembling the multipart/report: boundaries, encodings and header sections. */
import { randomBytes } from 'node:crypto';

const LF = 0x0a;
const CR = 0x0d;
/** RFC 2045 section 6.7 rule 5: encoded lines have at most 76 characters, soft break included. */
const QP_LINE_LENGTH = 76;

export function hasEightBitBytes(bytes: Buffer): boolean {
  for (const byte of bytes) {
    if (byte > 0x7f) {
      return true;
    }
  }
  return false;
}

/**
 * Returns the header section of a message: everything up to and including the first empty
 * line, which ends with CRLF or a bare LF. A message without an empty line is all header.
 */
export function headerSection(message: Buffer): Buffer {
  let lineStart = 0;
  while (lineStart < message.length) {
    if (message[lineStart] === LF) {
      return message.subarray(0, lineStart + 1);
    }
    if (message[lineStart] === CR && message[lineStart + 1] === LF) {
      return message.subarray(0, lineStart + 2);
    }
    const lineEnd = message.indexOf(LF, lineStart);
    if (lineEnd < 0) {
      break;
    }
    lineStart = lineEnd + 1;
  }
  return message;
}

function hexByte(byte: number): string {
  return `=${byte.toString(16).toUpperCase().padStart(2, '0')}`;
}

/**
 * Encodes text lines separated by CRLF as quoted-printable (RFC 2045 section 6.7) over their
 * UTF-8 bytes. Line breaks stay hard line breaks. Tabs and spaces are literal except at the end
 * of a line (rule 3), and long lines get soft line breaks.
 */
export function encodeQuotedPrintable(text: string): string {
  return text
    .split('\r\n')
    .map((line) => {
      const bytes = Buffer.from(line, 'utf8');
      const encodedLines: string[] = [];
      let current = '';
      bytes.forEach((byte, index) => {
        const isLast = index === bytes.length - 1;
        const literal =
          (byte >= 0x21 && byte <= 0x7e && byte !== 0x3d) ||
          ((byte === 0x20 || byte === 0x09) && !isLast);
        const token = literal ? String.fromCharCode(byte) : hexByte(byte);
        // One character stays free for the `=` of a soft line break, unless this is the end.
        const room = isLast ? QP_LINE_LENGTH : QP_LINE_LENGTH - 1;
        if (current.length + token.length > room) {
          encodedLines.push(`${current}=`);
          current = '';
        }
        current += token;
      });
      encodedLines.push(current);
      return encodedLines.join('\r\n');
    })
    .join('\r\n');
}

/** A source of random bytes, replaceable in tests. */
export type RandomSource = (size: number) => Buffer;

/**
 * Chooses a multipart boundary (RFC 2046 section 5.1.1) that occurs in none of the parts. A
 * random boundary of 144 bits is practically unique, but the original message comes from
 * outside and could contain any string, so every part is searched and a collision draws again.
 */
export function chooseBoundary(parts: Buffer[], random: RandomSource = randomBytes): string {
  for (;;) {
    const boundary = `dsn=_${random(18).toString('base64url')}`;
    if (parts.every((part) => part.indexOf(boundary, 0, 'latin1') < 0)) {
      return boundary;
    }
  }
}
