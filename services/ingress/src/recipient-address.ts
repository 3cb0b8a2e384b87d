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
  return { address: smtpUtf8 ? recipient : `${localPart}@${domain}`, domain, localPart };
}
