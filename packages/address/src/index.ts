/**
 * Mailbox parsing for relay decisions. The rule is strict on purpose: the domain is what follows
 * the last `@`, and a local part that carries routing characters (`@`, `%`, `!`) or a source
 * route is refused, because a primary or a later hop may route on them (the `%` hack, UUCP bang
 * paths, RFC 5321 source routes) and turn us into an open relay.
 */
import { domainToASCII, domainToUnicode } from 'node:url';

export interface Mailbox {
  localPart: string;
  /** Lower-case A-label form. */
  domain: string;
}

export type AddressProblem =
  | 'empty'
  | 'too-long'
  | 'source-route'
  | 'no-domain'
  | 'routing-characters'
  | 'invalid-domain'
  | 'address-literal'
  | 'invalid-local-part';

export class AddressError extends Error {
  override name = 'AddressError';
  constructor(
    readonly problem: AddressProblem,
    message: string,
  ) {
    super(message);
  }
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
const DOT_ATOM_LOCAL = /^[a-z0-9!#$&'*+/=?^_`{|}~.-]+$/i;

/**
 * Converts a domain to its lower-case A-label form and checks its syntax. Returns undefined for
 * anything that is not a valid host name (address literals included). It also returns
 * undefined for text that IDNA would only map onto a valid name, such as fullwidth letters or
 * the ideographic full stop, because every label must be given as its A-label or U-label.
 */
export function normalizeDomain(input: string): string | undefined {
  const trimmed = input.trim().replace(/\.$/, '');
  if (trimmed === '' || trimmed.length > 253) {
    return undefined;
  }
  const lower = trimmed.toLowerCase();
  const ascii = domainToASCII(lower);
  if (ascii === '' || ascii.length > 253) {
    return undefined;
  }
  const labels = ascii.split('.');
  const givenLabels = lower.split('.');
  if (givenLabels.length !== labels.length) {
    return undefined;
  }
  for (const [index, given] of givenLabels.entries()) {
    const label = labels[index] as string;
    if (given !== label && given.normalize('NFC') !== domainToUnicode(label)) {
      return undefined;
    }
  }
  if (labels.length < 2 || !labels.every((label) => LABEL.test(label))) {
    return undefined;
  }
  if (/^\d+$/.test(labels[labels.length - 1] as string)) {
    return undefined;
  }
  return ascii;
}

/** Parses an envelope address (without angle brackets) into local part and domain. */
export function parseMailbox(address: string): Mailbox {
  if (address.length === 0) {
    throw new AddressError('empty', 'empty address');
  }
  if (Buffer.byteLength(address) > 320) {
    throw new AddressError('too-long', 'address longer than 320 octets');
  }
  if (address.startsWith('@')) {
    throw new AddressError('source-route', 'source routes are not accepted');
  }
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) {
    throw new AddressError('no-domain', 'address has no domain');
  }
  const localPart = address.slice(0, at);
  const domainText = address.slice(at + 1);
  if (/[@%!]/.test(localPart)) {
    throw new AddressError(
      'routing-characters',
      'local part contains routing characters (@, % or !)',
    );
  }
  if (Buffer.byteLength(localPart) > 64) {
    throw new AddressError('invalid-local-part', 'local part longer than 64 octets');
  }
  if (!isValidLocalPart(localPart)) {
    throw new AddressError(
      'invalid-local-part',
      'local part is not a valid dot-atom or quoted string',
    );
  }
  if (domainText.startsWith('[')) {
    throw new AddressError('address-literal', 'address literals are not accepted');
  }
  const domain = normalizeDomain(domainText);
  if (!domain) {
    throw new AddressError('invalid-domain', `"${domainText}" is not a valid domain`);
  }
  return { localPart, domain };
}

function isValidLocalPart(localPart: string): boolean {
  if (localPart.startsWith('"')) {
    // Quoted string: printable characters, with backslash escapes, and nothing after the quote.
    return /^"(?:[^"\\\r\n]|\\[\x20-\x7e])*"$/.test(localPart);
  }
  if (localPart.startsWith('.') || localPart.endsWith('.') || localPart.includes('..')) {
    return false;
  }
  // RFC 6531 lets UTF-8 into local parts; every other octet must be atext.
  return [...localPart].every((char) => char.charCodeAt(0) > 0x7f || DOT_ATOM_LOCAL.test(char));
}

export {
  compileRecipientList,
  formatRecipientEntry,
  isPostmaster,
  parseRecipientEntry,
  RecipientPatternError,
} from './recipient-pattern.ts';
