/**
 * Header and delivery-status field values: dates, folding, and the cleaning that keeps text from
 * the input from ending a field early or leaving US-ASCII where RFC 3464 requires it.
 */
import { domainToASCII } from 'node:url';

/** RFC 5322 section 2.1.1: lines SHOULD stay within 78 characters and MUST within 998. */
const FOLD_WIDTH = 78;
/** Words longer than this are cut so that a line with its leading space stays within 998. */
const MAX_WORD_LENGTH = 900;

const DAY_NAMES = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTH_NAMES = [
  'Jan',
  'Feb',
  'Mar',
  'Apr',
  'May',
  'Jun',
  'Jul',
  'Aug',
  'Sep',
  'Oct',
  'Nov',
  'Dec',
];

function twoDigits(value: number): string {
  return String(value).padStart(2, '0');
}

/**
 * Formats a date as an RFC 5322 section 3.3 date-time in UTC, such as
 * `Thu, 04 Dec 2025 09:51:00 +0000`. RFC 3464 section 2.3.7 requires the numeric zone.
 */
export function formatDate(date: Date): string {
  const day = DAY_NAMES[date.getUTCDay()] as string;
  const month = MONTH_NAMES[date.getUTCMonth()] as string;
  const year = String(date.getUTCFullYear()).padStart(4, '0');
  const time = [date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds()]
    .map(twoDigits)
    .join(':');
  return `${day}, ${twoDigits(date.getUTCDate())} ${month} ${year} ${time} +0000`;
}

function isControl(codePoint: number): boolean {
  return codePoint < 0x20 || (codePoint >= 0x7f && codePoint <= 0x9f);
}

/**
 * Replaces every control character with a space, and a CRLF pair with one space, because a CR
 * or LF from the input could otherwise start a new field.
 */
export function replaceControls(text: string): string {
  let replaced = '';
  for (const character of text.replace(/\r\n/g, ' ')) {
    replaced += isControl(character.codePointAt(0) as number) ? ' ' : character;
  }
  return replaced;
}

/** Replaces controls like replaceControls, then collapses runs of spaces and trims. */
export function cleanText(text: string): string {
  return replaceControls(text).replace(/ {2,}/g, ' ').trim();
}

export function isAscii(text: string): boolean {
  for (let index = 0; index < text.length; index++) {
    if (text.charCodeAt(index) > 0x7f) {
      return false;
    }
  }
  return true;
}

/**
 * Cleans text for a delivery-status field, where every non-ASCII character becomes `?`.
 * RFC 3464 section 2.1 requires the 7bit encoding for message/delivery-status, and its fields
 * take the `text` token of RFC 822 (section 2.1.3), which is ASCII. The text part of the DSN
 * shows the unchanged text.
 */
export function asciiText(text: string): string {
  let ascii = '';
  for (const character of cleanText(text)) {
    ascii += (character.codePointAt(0) as number) > 0x7f ? '?' : character;
  }
  return ascii;
}

/**
 * Cleans a host name for Reporting-MTA, Remote-MTA, From and Message-ID, converting an
 * internationalized name to its ASCII form (punycode, `xn--` labels) because those fields are
 * ASCII. A name that does not convert gets `?` for each non-ASCII character.
 */
export function asciiHostName(host: string): string {
  const cleaned = cleanText(host);
  if (isAscii(cleaned)) {
    return cleaned;
  }
  const converted = domainToASCII(cleaned);
  return converted === '' ? asciiText(cleaned) : converted;
}

/**
 * Formats a recipient address with its RFC 3464 address type. An ASCII address is `rfc822`.
 * A non-ASCII one is `utf-8` in the utf-8-addr-xtext form of RFC 6533 section 3, so the
 * delivery-status part stays ASCII: every character other than printable ASCII, and `\`, `+`
 * and `=`, is written as `\x{HEX}` with its Unicode code point.
 */
export function typedAddress(address: string): string {
  const cleaned = replaceControls(address);
  if (isAscii(cleaned)) {
    return `rfc822; ${cleaned}`;
  }
  let encoded = '';
  for (const character of cleaned) {
    const codePoint = character.codePointAt(0) as number;
    const qchar = codePoint > 0x20 && codePoint < 0x7f && !'\\+='.includes(character);
    encoded += qchar ? character : `\\x{${codePoint.toString(16).toUpperCase()}}`;
  }
  return `utf-8; ${encoded}`;
}

function splitLongWord(word: string): string[] {
  const pieces: string[] = [];
  for (let start = 0; start < word.length; start += MAX_WORD_LENGTH) {
    pieces.push(word.slice(start, start + MAX_WORD_LENGTH));
  }
  return pieces;
}

/**
 * Formats `name: value` as a header or delivery-status field, folded per RFC 5322 section
 * 2.2.3: a CRLF goes in front of a space that is already in the value, so unfolding restores
 * the value exactly. A line breaks at the last space before column 78, and only in front of a
 * word, so no line consists of spaces alone. A word longer than 900 characters is cut into
 * pieces separated by a fold, which adds a space to the value but keeps every line within the
 * 998-character limit of section 2.1.1.
 *
 * The value must not contain controls; see replaceControls.
 */
export function formatField(name: string, value: string): string {
  const words = value.split(' ').flatMap((word) => (word === '' ? [''] : splitLongWord(word)));
  const lines: string[] = [];
  let line = `${name}:`;
  let lineHasWord = false;
  for (const word of words) {
    const fits = line.length + 1 + word.length <= FOLD_WIDTH;
    if (fits || word === '' || !lineHasWord) {
      line += ` ${word}`;
    } else {
      lines.push(line);
      line = ` ${word}`;
    }
    lineHasWord ||= word !== '';
  }
  lines.push(line);
  return `${lines.join('\r\n')}\r\n`;
}
