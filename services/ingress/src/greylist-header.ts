/**
 * The `X-Greylist:` header of a message whose sender was greylisted, placed right after our
 * `Received:` line, so readers see why it arrived late:
 *
 *   X-Greylist: delayed 312 seconds by secondary-mx at mx2.example.net; Fri, 04 Dec 2026 10:00:00 +0000
 *
 * The line stays unfolded. With a host name of at most 253 characters it is far below the
 * 998-character limit of RFC 5322.
 */
import { formatRfc5322Date } from './received.ts';

export function buildGreylistHeader(delayedSeconds: number, hostname: string, date: Date): Buffer {
  const line = `X-Greylist: delayed ${delayedSeconds} seconds by secondary-mx at ${hostname}; ${formatRfc5322Date(date)}\r\n`;
  return Buffer.from(line, 'utf8');
}
