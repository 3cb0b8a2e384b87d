/**
 * Client groups: the part of a greylist triplet that names the sending side. Big senders retry
 * from another address of their pool, so a triplet names a group that the whole pool shares,
 * chosen in this order:
 *
 * 1. `spf:<domain>` when SPF passed for the sender's domain through a mechanism that names
 *    specific hosts (spf-narrowing.ts). Every address that the domain authorizes so is one sender.
 * 2. `name:<organizational domain>` when the client has a forward-confirmed reverse DNS name,
 *    with the organizational domain taken from the public suffix list (tldts), so
 *    `mail-a.outbound.protection.example` and `mail-b.outbound.protection.example` share
 *    `protection.example`. Names of dynamic access pools, which embed the client's address or
 *    contain a pool word such as `dyn` or `dsl` (dynamic-name.ts), are left out, so they do not
 *    group a whole provider's customers.
 * 3. `net:<cidr>`, the client's /24 (IPv4) or /64 (IPv6) from clientNetwork.
 *
 * A group may be auto-whitelisted after enough passes. A network group wider than /24 or /64
 * never is, so one busy network cannot open greylisting for its neighbours.
 *
 * NOTE: one group is chosen per attempt. A retry whose SPF check fails temporarily after the
 * first attempt passed SPF (or the reverse) keys another group and is deferred again as new.
 */
import { getDomain } from 'tldts';
import { isDynamicName } from './dynamic-name.ts';
import { clientNetwork } from './network.ts';

export interface ClientIdentity {
  clientAddress: string;
  /** The client's forward-confirmed reverse DNS name, when it has one. */
  clientName?: string | undefined;
  /** The sender domain when SPF passed through a mechanism that names specific hosts. */
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
 * Returns false for a network group wider than /24 (IPv4) or /64 (IPv6), which must never be
 * auto-whitelisted, and true for every other group.
 */
export function isAutoWhitelistable(group: string): boolean {
  const network = /^net:(.*)\/(\d+)$/.exec(group);
  if (!network) {
    return true;
  }
  const minPrefix = network[1]?.includes(':') ? 64 : 24;
  return Number(network[2]) >= minPrefix;
}

/**
 * Returns the organizational domain of a client name, or undefined when there is no name, the
 * name has no registrable domain, or it is the name of a dynamic access pool.
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
  if (!domain || isDynamicName(host.slice(0, -domain.length), address)) {
    return undefined;
  }
  return domain;
}
