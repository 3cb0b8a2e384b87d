/**
 * The per-domain recipient check at RCPT time, which keeps us from accepting mail that the
 * primary would reject and that we would then bounce to forged senders (backscatter):
 * - `none` accepts every local part;
 * - `list` accepts local parts that match the domain's list;
 * - `verify` checks the recipient with the primary (or the cache of its earlier verdicts) and
 *   accepts it when neither has a verdict, so an unreachable primary never stops mail.
 * Postmaster is accepted in every mode (RFC 5321 section 4.5.1).
 */
import { isPostmaster } from '@secondary-mx/address';
import type { Logger } from '@secondary-mx/logger';
import type { DomainPolicyEntry } from './approved-domains.ts';
import { smtpError } from './enhanced-codes.ts';
import type { RecipientVerifier } from './recipient-verifier.ts';

export interface RecipientToCheck {
  session: string;
  /** The address as given at RCPT. */
  address: string;
  localPart: string;
  /** Lower-case A-label form. */
  domain: string;
}

/** Maximum length of the primary's reply that we quote in ours. */
const MAX_QUOTED_REPLY = 300;

/** Makes the primary's reply safe to repeat on one line of our reply. */
function quoteReply(reply: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are removed.
  const clean = reply.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return clean.length <= MAX_QUOTED_REPLY ? clean : `${clean.slice(0, MAX_QUOTED_REPLY - 3)}...`;
}

/**
 * Checks one recipient of an approved domain. Returns how it passed, for the log line, or
 * throws the smtp-server error to reply with.
 */
export async function checkRecipientPolicy(
  recipient: RecipientToCheck,
  policy: DomainPolicyEntry,
  verifier: RecipientVerifier,
  log: Logger,
): Promise<string> {
  const { address, localPart } = recipient;
  if (policy.recipientCheck === 'none') {
    return 'none';
  }
  if (isPostmaster(localPart)) {
    return 'postmaster';
  }

  if (policy.recipientCheck === 'list') {
    if (policy.isListed(localPart)) {
      return 'listed';
    }
    log.info({ recipient: address, reply: 550 }, 'recipient rejected: not in the recipient list');
    throw smtpError(550, '5.1.1', `<${address}>: recipient address rejected: user unknown`);
  }

  const cacheLocalPart = policy.localPartCaseSensitive ? localPart : localPart.toLowerCase();
  const outcome = await verifier.verify(
    {
      session: recipient.session,
      recipient: address,
      domain: recipient.domain,
      primaryHosts: policy.primaryHosts,
      cacheAddress: `${cacheLocalPart}@${recipient.domain}`,
    },
    log,
  );
  if (outcome.result === 'invalid') {
    log.info(
      { recipient: address, source: outcome.source, primaryReply: outcome.reply, reply: 550 },
      'recipient rejected: the primary rejected it',
    );
    throw smtpError(
      550,
      '5.1.1',
      `<${address}>: recipient address rejected: primary MX replied ${quoteReply(outcome.reply)}`,
    );
  }
  if (outcome.result === 'unknown') {
    log.info(
      { recipient: address, source: outcome.source, primaryReply: outcome.reply },
      'recipient not verified, accepted',
    );
    return 'unverified';
  }
  return outcome.source === 'cache' ? 'verified-cached' : 'verified';
}
