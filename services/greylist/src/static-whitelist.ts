/**
 * The whitelists from settings: client networks (MX_GREYLIST_WHITELIST_CLIENTS), suffixes of
 * forward-confirmed client names (MX_GREYLIST_WHITELIST_NAMES) and sender domains
 * (MX_GREYLIST_WHITELIST_SENDERS). A match passes without touching Redis.
 */
import ipaddr from 'ipaddr.js';

export interface StaticWhitelistLists {
  /** Networks in CIDR notation, as the settings parser returns them. */
  clients: readonly string[];
  /** Lower-case name suffixes without a leading dot; each matches itself and its subdomains. */
  names: readonly string[];
  /** Lower-case domains; each matches itself and its subdomains. */
  senders: readonly string[];
}

export interface WhitelistSubject {
  clientAddress: string;
  /** Only a forward-confirmed name, since anyone can publish any PTR record. */
  clientName?: string | undefined;
  /** Empty string for the null reverse-path `<>`. */
  sender: string;
}

/** Verdict reason of a pass by the static whitelists. */
export type StaticWhitelistReason =
  | 'whitelisted-client'
  | 'whitelisted-name'
  | 'whitelisted-sender';

export class StaticWhitelist {
  private readonly networks: [ipaddr.IPv4 | ipaddr.IPv6, number][];

  constructor(private readonly lists: StaticWhitelistLists) {
    this.networks = lists.clients.map((network) => ipaddr.parseCIDR(network));
  }

  /** Returns the reason when the subject is whitelisted, or undefined. */
  match(subject: WhitelistSubject): StaticWhitelistReason | undefined {
    if (this.matchesClient(subject.clientAddress)) {
      return 'whitelisted-client';
    }
    if (subject.clientName && matchesSuffix(subject.clientName, this.lists.names)) {
      return 'whitelisted-name';
    }
    const at = subject.sender.lastIndexOf('@');
    if (at > 0 && matchesSuffix(subject.sender.slice(at + 1), this.lists.senders)) {
      return 'whitelisted-sender';
    }
    return undefined;
  }

  private matchesClient(clientAddress: string): boolean {
    if (this.networks.length === 0 || !ipaddr.isValid(clientAddress)) {
      return false;
    }
    // process() turns an IPv4-mapped IPv6 address into IPv4.
    const address = ipaddr.process(clientAddress);
    return this.networks.some(
      ([network, prefix]) => network.kind() === address.kind() && address.match(network, prefix),
    );
  }
}

function matchesSuffix(name: string, suffixes: readonly string[]): boolean {
  const host = name.trim().toLowerCase().replace(/\.$/, '');
  return suffixes.some((suffix) => host === suffix || host.endsWith(`.${suffix}`));
}
