/**
 * The static whitelists: client networks, suffixes of forward-confirmed client names and
 * senders that are never greylisted. Entries come from the settings
 * (MX_GREYLIST_WHITELIST_CLIENTS, _NAMES, _SENDERS) and from the admin API, which keeps them in
 * Redis (whitelist-store.ts). A match passes without touching the triplet records.
 */
import type { GreylistWhitelistEntry } from '@secondary-mx/contracts';
import ipaddr from 'ipaddr.js';
import { normalizeSender } from './sender.ts';
import { InvalidWhitelistValueError, normalizeWhitelistValue } from './whitelist-value.ts';

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

export interface WhitelistMatch {
  reason: StaticWhitelistReason;
  entry: GreylistWhitelistEntry;
}

/** Anything that matches a subject against static whitelist entries. */
export interface WhitelistMatcher {
  matchEntry(subject: WhitelistSubject): WhitelistMatch | undefined;
}

/**
 * Returns the entries of the settings lists, with sender domains written as `@domain`. Each
 * value is in the normal form of normalizeWhitelistValue where it has one, and as the setting
 * gave it otherwise (a single-label name such as `localhost`).
 */
export function settingsEntries(lists: StaticWhitelistLists): GreylistWhitelistEntry[] {
  const entry = (kind: GreylistWhitelistEntry['kind'], value: string): GreylistWhitelistEntry => {
    try {
      return { kind, value: normalizeWhitelistValue(kind, value), source: 'setting' };
    } catch (error) {
      if (error instanceof InvalidWhitelistValueError) {
        return { kind, value, source: 'setting' };
      }
      throw error;
    }
  };
  return [
    ...lists.clients.map((value) => entry('client', value)),
    ...lists.names.map((value) => entry('name', value)),
    ...lists.senders.map((value) => entry('sender', `@${value}`)),
  ];
}

export class StaticWhitelist implements WhitelistMatcher {
  /** Every entry: those of the settings first, then the others in the given order. */
  readonly entries: readonly GreylistWhitelistEntry[];
  private readonly networks: [ipaddr.IPv4 | ipaddr.IPv6, number, GreylistWhitelistEntry][] = [];
  private readonly names: [string, GreylistWhitelistEntry][] = [];
  private readonly senderDomains: [string, GreylistWhitelistEntry][] = [];
  /** Address entries by their normalized form (sender.ts), as triplet keys compare senders. */
  private readonly senderAddresses = new Map<string, GreylistWhitelistEntry>();

  /**
   * Builds the whitelist from the settings lists and further entries, whose values must be in
   * the normal form of normalizeWhitelistValue.
   */
  constructor(lists: StaticWhitelistLists, others: readonly GreylistWhitelistEntry[] = []) {
    this.entries = [...settingsEntries(lists), ...others];
    for (const entry of this.entries) {
      this.add(entry);
    }
  }

  private add(entry: GreylistWhitelistEntry): void {
    switch (entry.kind) {
      case 'client': {
        const [network, prefix] = ipaddr.parseCIDR(entry.value);
        this.networks.push([network, prefix, entry]);
        break;
      }
      case 'name':
        this.names.push([entry.value, entry]);
        break;
      case 'sender':
        if (entry.value.startsWith('@')) {
          this.senderDomains.push([entry.value.slice(1), entry]);
        } else if (!this.senderAddresses.has(normalizeSender(entry.value))) {
          this.senderAddresses.set(normalizeSender(entry.value), entry);
        }
        break;
    }
  }

  /** Returns the reason when the subject is whitelisted, or undefined. */
  match(subject: WhitelistSubject): StaticWhitelistReason | undefined {
    return this.matchEntry(subject)?.reason;
  }

  /**
   * Returns the reason and the first entry that matches, or undefined. Clients are tried first,
   * then names, then senders.
   */
  matchEntry(subject: WhitelistSubject): WhitelistMatch | undefined {
    const client = this.matchClient(subject.clientAddress);
    if (client) {
      return { reason: 'whitelisted-client', entry: client };
    }
    const name = subject.clientName ? matchSuffix(subject.clientName, this.names) : undefined;
    if (name) {
      return { reason: 'whitelisted-name', entry: name };
    }
    const sender = this.matchSender(subject.sender);
    if (sender) {
      return { reason: 'whitelisted-sender', entry: sender };
    }
    return undefined;
  }

  private matchClient(clientAddress: string): GreylistWhitelistEntry | undefined {
    if (this.networks.length === 0 || !ipaddr.isValid(clientAddress)) {
      return undefined;
    }
    // process() turns an IPv4-mapped IPv6 address into IPv4.
    const address = ipaddr.process(clientAddress);
    const found = this.networks.find(
      ([network, prefix]) => network.kind() === address.kind() && address.match(network, prefix),
    );
    return found?.[2];
  }

  /** Matches `@domain` entries by the sender's domain, then address entries. */
  private matchSender(sender: string): GreylistWhitelistEntry | undefined {
    const at = sender.lastIndexOf('@');
    if (at <= 0) {
      return undefined;
    }
    const domain = matchSuffix(sender.slice(at + 1), this.senderDomains);
    if (domain) {
      return domain;
    }
    return this.senderAddresses.size > 0
      ? this.senderAddresses.get(normalizeSender(sender))
      : undefined;
  }
}

function matchSuffix(
  name: string,
  suffixes: readonly [string, GreylistWhitelistEntry][],
): GreylistWhitelistEntry | undefined {
  const host = name.trim().toLowerCase().replace(/\.$/, '');
  const found = suffixes.find(([suffix]) => host === suffix || host.endsWith(`.${suffix}`));
  return found?.[1];
}
