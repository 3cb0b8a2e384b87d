/**
 * Checks of the message text that ingress applies after DATA, fed chunk by chunk as it arrives.
 *
 * smtp-server 3.21 ends DATA only at CRLF.CRLF (or `.` CRLF as the first line) and passes
 * every other byte on unchanged, bare CR and bare LF included. It also removes the first of two
 * dots after a bare LF, not only after CRLF. A message with a bare CR or LF could therefore end
 * early at a primary that accepts `LF.LF` as the end of data, and the rest would run there as a
 * second transaction (SMTP smuggling). So ingress rejects any bare CR or LF with 554 5.6.0, as
 * RFC 5321 section 2.3.8 allows. It also rejects lines of more than 1000 octets with the CRLF
 * (RFC 5321 section 4.5.3.1.6), since the primary may refuse them, and counts the Received:
 * fields of the header for the hop limit (RFC 5321 section 6.3).
 */
import { smtpError } from './enhanced-codes.ts';

/** Maximum line length in octets, CRLF included (RFC 5321 section 4.5.3.1.6). */
export const MAX_LINE_OCTETS = 1000;

const CR = 0x0d;
const LF = 0x0a;
/** Enough of a header line to recognize `Received:`, with some room for blanks before the colon. */
const FIELD_PREFIX_OCTETS = 16;
const RECEIVED_FIELD = /^received[ \t]*:/i;

export interface ScanResult {
  /** 1-based line number of the first bare CR or LF. */
  bareLineEndingLine: number | undefined;
  /** 1-based line number and length with its CRLF of the first line over MAX_LINE_OCTETS. */
  longLine: { line: number; octets: number } | undefined;
  /** Received: fields in the header section. */
  receivedFields: number;
}

export class MessageScanner {
  private previous = -1;
  private line = 1;
  private lineOctets = 0;
  private inHeader = true;
  private prefix = '';
  private readonly result: ScanResult = {
    bareLineEndingLine: undefined,
    longLine: undefined,
    receivedFields: 0,
  };

  /** Scans the next chunk of the message as smtp-server passes it on (dots unstuffed). */
  scan(chunk: Buffer): void {
    for (let index = 0; index < chunk.length; index++) {
      const byte = chunk[index] as number;
      if (this.previous === CR && byte !== LF) {
        this.bareLineEnding();
      }
      if (byte === LF) {
        if (this.previous !== CR) {
          this.bareLineEnding();
        }
        this.endLine();
      } else if (byte !== CR) {
        this.lineOctets += 1;
        if (this.inHeader && this.prefix.length < FIELD_PREFIX_OCTETS) {
          this.prefix += String.fromCharCode(byte);
        }
      }
      this.previous = byte;
    }
  }

  /** Ends the scan and returns what it found. */
  finish(): ScanResult {
    if (this.previous === CR) {
      this.bareLineEnding();
    }
    if (this.lineOctets > 0) {
      this.endLine();
    }
    return this.result;
  }

  private bareLineEnding(): void {
    this.result.bareLineEndingLine ??= this.line;
  }

  private endLine(): void {
    const octets = this.lineOctets + 2;
    if (octets > MAX_LINE_OCTETS && !this.result.longLine) {
      this.result.longLine = { line: this.line, octets };
    }
    if (this.inHeader) {
      if (this.lineOctets === 0) {
        this.inHeader = false;
      } else if (RECEIVED_FIELD.test(this.prefix)) {
        this.result.receivedFields += 1;
      }
    }
    this.line += 1;
    this.lineOctets = 0;
    this.prefix = '';
  }
}

/**
 * Returns the smtp-server error for the first rule a scanned message breaks, or undefined.
 * The order is fixed: bare line endings, then line length, then the hop count. maxHops bounds
 * the Received: fields of the message as stored, our own included.
 */
export function messageViolation(result: ScanResult, maxHops: number): Error | undefined {
  if (result.bareLineEndingLine !== undefined) {
    return smtpError(
      554,
      '5.6.0',
      `bare CR or LF in line ${result.bareLineEndingLine}: every line must end with CRLF`,
    );
  }
  if (result.longLine) {
    return smtpError(
      554,
      '5.6.0',
      `line ${result.longLine.line} has ${result.longLine.octets} octets, more than the ${MAX_LINE_OCTETS} allowed with its CRLF`,
    );
  }
  // The Received: field that ingress prepends counts too, so the primary sees at most maxHops.
  if (result.receivedFields >= maxHops) {
    return smtpError(
      554,
      '5.4.6',
      `too many hops: ${result.receivedFields} Received: header fields and ours, the limit is ${maxHops}`,
    );
  }
  return undefined;
}
