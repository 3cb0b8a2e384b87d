/**
 * Client groups: the part of a greylist triplet that names the sending side. Big senders retry
 * from another address of their pool, so a triplet names a group that the whole pool shares,
 * chosen in this order:
 *
 * 1. `spf:<domain>` when SPF passed for the sender's domain: every address that the domain
 *    authorizes is one sender.
 * 2. `name:<organizational domain>` when the client has a forward-confirmed reverse DNS name,
 *    with the organizational domain taken from the public suffix list (tldts), so
 *    `mail-a.outbound.protection.example` and `mail-b.outbound.protection.example` share
 *    `protection.example`. Names that embed the client's own address, as dynamic pools of
 *    access providers have, are left out, so they do not group a whole provider's customers.
 * 3. `net:<cidr>`, the client's /24 (IPv4) or /64 (IPv6).
 *
 * NOTE: one group is chosen per attempt. A retry whose SPF check fails temporarily after the
 * first attempt passed SPF (or the reverse) keys another group and is deferred again as new.
 */
import { getDomain } from 'tldts';
import { clientNetwork } from './network.ts';

export interface ClientIdentity {
  clientAddress: string;
  /** The client's forward-confirmed reverse DNS name, when it has one. */
  clientName?: string | undefined;
  /** The sender domain for which SPF passed, when it did. */
  spfDomain?: string | undefined;
}

/** Returns the client's group. Throws InvalidAddressError for a client address that is not an IP. */
export function clientGroup(identity: ClientIdentity): string {
  const network = clientNetwork(identity.clientAddress);
  if (identity.spfDomain) {
    return `spf:${identity.spfDomain.toLowerCase()}`;
  }
  const organization = organizationalDomain(identity.clientName, identity.clientAddress);
  if (organization !== undefined) {
    return `name:${organization}`;
  }
  return `net:${network}`;
}

/**
 * Returns the organizational domain of a client name, or undefined when there is no name, the
 * name has no registrable domain, or it embeds the client's address.
 */
export function organizationalDomain(
  name: string | undefined,
  address: string,
): string | undefined {
  if (!name) {
    return undefined;
  }
  const host = name.trim().toLowerCase().replace(/\.$/, '');
  const domain = getDomain(host, { allowPrivateDomains: true });
  if (!domain || embedsAddress(host.slice(0, -domain.length), address)) {
    return undefined;
  }
  return domain;
}

/**
 * Returns true when the labels in front of the organizational domain contain the four octets
 * of an IPv4 address, in either order (`40-107-0-89.pool.example`, `89.0.107.40.dyn.example`).
 *
 * NOTE: IPv6 clients are not checked, because generic IPv6 reverse names have no common form.
 */
function embedsAddress(hostPart: string, address: string): boolean {
  const ipv4 = /(?:^|:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address.trim());
  if (!ipv4) {
    return false;
  }
  const octets = ipv4.slice(1, 5);
  const numbers = hostPart.split(/\D+/).filter((part) => part !== '');
  const text = `.${numbers.map(Number).join('.')}.`;
  const forward = `.${octets.map(Number).join('.')}.`;
  const reversed = `.${octets.map(Number).reverse().join('.')}.`;
  return text.includes(forward) || text.includes(reversed);
}
