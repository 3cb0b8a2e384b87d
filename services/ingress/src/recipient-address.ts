/**
 * Turns a RCPT TO address, as smtp-server parsed it, into the mailbox ingress relays for, or
 * into the reply that rejects it. smtp-server 3.21 has already dropped a source route
 * (`<@relay:user@domain>` arrives as `user@domain`), refused more than one `@` outside quotes,
 * and turned A-label domains into U-labels.
 */
import { AddressError, type AddressProblem, parseMailbox } from '@secondary-mx/address';
import { smtpError } from './enhanced-codes.ts';

export interface RecipientMailbox {
  /** The address as ingress stores it: with the A-label domain unless the session is SMTPUTF8. */
  address: string;
  /** Lower-case A-label form. */
  domain: string;
  localPart: string;
}

/** One atom of a dot-atom: RFC 5322 atext, plus UTF-8 (RFC 6531 section 3.3). */
const DOT_ATOM_TEXT = /^[a-z0-9!#$%&'*+/=?^_`{|}~\-\u{80}-\u{10FFFF}]+$/iu;

/** Problems that a later hop could read as a route to another domain: these deny relaying. */
const RELAY_PROBLEMS = new Set<AddressProblem>([
  'routing-characters',
  'source-route',
  'address-literal',
]);

/**
 * Parses one recipient. Throws an smtp-server error: 550 5.7.1 for routing tricks, 550 5.1.1
 * for the domainless `postmaster`, 553 5.6.7 for UTF-8 without SMTPUTF8, 501 5.1.3 otherwise.
 */
export function parseRecipient(recipient: string, smtpUtf8: boolean): RecipientMailbox {
  if (recipient.toLowerCase() === 'postmaster') {
    // RFC 5321 section 4.1.1.3 names our own postmaster, and a backup MX has no local mailboxes.
    throw smtpError(550, '5.1.1', `<${recipient}>: no local mailboxes here`);
  }

  let localPart: string;
  let domain: string;
  try {
    ({ localPart, domain } = parseMailbox(recipient));
  } catch (error) {
    if (!(error instanceof AddressError)) {
      throw error;
    }
    if (RELAY_PROBLEMS.has(error.problem)) {
      throw smtpError(550, '5.7.1', `<${recipient}>: relaying denied`);
    }
    throw smtpError(501, '5.1.3', `<${recipient}>: ${error.message}`);
  }

  // smtp-server hands over U-labels whatever the client sent, so only the local part shows
  // whether the client used UTF-8 (RFC 6531 section 3.4).
  if (!smtpUtf8 && /[^\p{ASCII}]/u.test(localPart)) {
    throw smtpError(553, '5.6.7', `<${recipient}>: a UTF-8 local part requires SMTPUTF8`);
  }
  const unquoted = unquoteLocalPart(localPart);
  const givenDomain = recipient.slice(recipient.lastIndexOf('@') + 1);
  return {
    address: `${unquoted}@${smtpUtf8 ? givenDomain : domain}`,
    domain,
    localPart: unquoted,
  };
}

/**
 * Returns the dot-atom form of a quoted local part that needs no quotes (`"alice"` and
 * `"al\ice"` are `alice`, RFC 5321 section 4.1.2), so list checks, the greylist and the
 * removal of repeated recipients see one address. Any other local part is returned as given.
 *
 * A quoted local part that needs its quotes, such as `".alice"` or `"a(b"`, is kept and
 * relayed, because parseMailbox has already rejected the routing characters `@`, `%` and `!`
 * inside quotes, which are what a later hop could route on.
 *
 * NOTE: one with a space, such as `"a b"@example.org`, gets 501 from smtp-server 3.21 before
 * onRcptTo runs, because smtp-server splits the command line at whitespace before it parses
 * the path. Accepting it would take a RCPT parser of our own.
 */
function unquoteLocalPart(localPart: string): string {
  if (!localPart.startsWith('"')) {
    return localPart;
  }
  const content = localPart.slice(1, -1).replace(/\\(.)/gu, '$1');
  const dotAtom = content.split('.').every((atom) => DOT_ATOM_TEXT.test(atom));
  return dotAtom ? content : localPart;
}
