/**
 * Decoding of the xtext in the ORCPT and ENVID parameters (RFC 3461 section 4) for the
 * Original-Recipient and Original-Envelope-Id fields, which must stay ASCII without controls.
 */

const PLUS = 0x2b;
const CR = 0x0d;
const LF = 0x0a;

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) {
    return code - 0x30;
  }
  const upper = code & ~0x20;
  return upper >= 0x41 && upper <= 0x46 ? upper - 0x41 + 10 : -1;
}

/**
 * Decodes xtext into bytes. A `+` followed by two hex digits is one byte. RFC 3461 requires
 * upper-case digits, but lower case is accepted too. A `+` without two hex digits after it is
 * kept as it is rather than rejected, because the parameter was accepted when the message
 * arrived and the DSN should still be sent.
 */
export function decodeXtext(text: string): Buffer {
  const input = Buffer.from(text, 'utf8');
  const bytes: number[] = [];
  for (let index = 0; index < input.length; index++) {
    const byte = input[index] as number;
    if (byte === PLUS && index + 2 < input.length) {
      const high = hexValue(input[index + 1] as number);
      const low = hexValue(input[index + 2] as number);
      if (high >= 0 && low >= 0) {
        bytes.push(high * 16 + low);
        index += 2;
        continue;
      }
    }
    bytes.push(byte);
  }
  return Buffer.from(bytes);
}

/**
 * Converts decoded bytes to field text. Printable ASCII and space are kept. Controls become
 * spaces, and a CRLF pair one space, so that an encoded CR or LF cannot start a new field. A
 * byte above 127 stays in its `+XX` form, which keeps the field ASCII and loses nothing.
 */
function bytesToFieldText(bytes: Buffer): string {
  let text = '';
  for (const [index, byte] of bytes.entries()) {
    if (byte === LF && bytes[index - 1] === CR) {
      continue;
    }
    if (byte >= 0x20 && byte < 0x7f) {
      text += String.fromCharCode(byte);
    } else if (byte < 0x20 || byte === 0x7f) {
      text += ' ';
    } else {
      text += `+${byte.toString(16).toUpperCase()}`;
    }
  }
  return text;
}

/**
 * Converts a decoded utf-8 address (RFC 6533 section 3) to its utf-8-addr-xtext form, the only
 * form allowed in a message/delivery-status field. The decoded value may be utf-8-addr-xtext
 * already, or utf-8-addr-unitext with raw UTF-8, whose non-ASCII characters become
 * `\x{HEX}`. Invalid UTF-8 becomes U+FFFD.
 */
function utf8AddressToXtext(bytes: Buffer): string {
  let text = '';
  for (const character of bytes.toString('utf8').replace(/\r\n/g, ' ')) {
    const codePoint = character.codePointAt(0) as number;
    if (codePoint > 0x7f) {
      text += `\\x{${codePoint.toString(16).toUpperCase()}}`;
    } else if (codePoint < 0x20 || codePoint === 0x7f) {
      text += ' ';
    } else {
      text += character;
    }
  }
  return text;
}

/**
 * Formats the ORCPT parameter as the value of an Original-Recipient field (RFC 3464 section
 * 2.3.1): the address type as given, then the decoded address. A parameter without `;` has no
 * address type, which section 2.3.1 writes as `unknown`.
 */
export function originalRecipientValue(orcpt: string): string {
  const separator = orcpt.indexOf(';');
  const givenType = separator >= 0 ? orcpt.slice(0, separator) : '';
  const encoded = separator >= 0 ? orcpt.slice(separator + 1) : orcpt;
  const addressType = bytesToFieldText(Buffer.from(givenType.trim(), 'utf8')).replace(/ /g, '');
  const bytes = decodeXtext(encoded);
  const address =
    addressType.toLowerCase() === 'utf-8' ? utf8AddressToXtext(bytes) : bytesToFieldText(bytes);
  return `${addressType === '' ? 'unknown' : addressType};${address}`;
}

/** Formats the ENVID parameter as the value of an Original-Envelope-Id field. */
export function envelopeIdValue(envid: string): string {
  return bytesToFieldText(decodeXtext(envid));
}

/**
 * Encodes text as xtext (RFC 3461 section 4): `+`, `=`, controls, space and every byte above
 * 126 become `+XX`. It is the inverse of decodeXtext.
 */
export function encodeXtext(text: string): string {
  let encoded = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const printable = byte >= 33 && byte <= 126 && byte !== 0x2b && byte !== 0x3d;
    encoded += printable
      ? String.fromCharCode(byte)
      : `+${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return encoded;
}
