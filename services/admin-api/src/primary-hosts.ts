/**
 * Syntax of a next-hop override entry: `host` or `host:port`, where host is a DNS name, an IPv4
 * address or an IPv6 address in brackets, and port is 1-65535. Entries are stored normalized:
 * DNS names as lower-case A-labels without a trailing dot, IPv6 addresses in lower case.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { domainToASCII } from 'node:url';

const LABEL_PATTERN = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
const ENTRY_PATTERN = /^(?:\[([^\]]*)\]|([^:[\]]+))(?::(\d{1,5}))?$/;

export class PrimaryHostError extends Error {
  override name = 'PrimaryHostError';
}

function normalizeHostName(name: string): string | undefined {
  const ascii = domainToASCII(name.replace(/\.$/, '').toLowerCase());
  if (ascii === '' || ascii.length > 253) {
    return undefined;
  }
  const labels = ascii.split('.');
  if (!labels.every((label) => LABEL_PATTERN.test(label))) {
    return undefined;
  }
  // A name whose last label is numeric would be read as an IPv4 address by resolvers.
  if (/^\d+$/.test(labels[labels.length - 1] as string)) {
    return undefined;
  }
  return ascii;
}

function normalizeHost(bracketed: string | undefined, bare: string | undefined): string {
  if (bracketed !== undefined) {
    if (!isIPv6(bracketed)) {
      throw new PrimaryHostError(`[${bracketed}] is not an IPv6 address`);
    }
    return `[${bracketed.toLowerCase()}]`;
  }
  const host = bare ?? '';
  if (/^[\d.]+$/.test(host)) {
    if (!isIPv4(host)) {
      throw new PrimaryHostError(`${host} is not an IPv4 address`);
    }
    return host;
  }
  const name = normalizeHostName(host);
  if (name === undefined) {
    throw new PrimaryHostError(`${host} is not a valid host name`);
  }
  return name;
}

/** Parses and normalizes one entry. Throws a PrimaryHostError that states what is wrong. */
export function normalizePrimaryHost(entry: string): string {
  const trimmed = entry.trim();
  if (isIPv6(trimmed)) {
    throw new PrimaryHostError('an IPv6 address must be in brackets, as in [2001:db8::1]:25');
  }
  const match = ENTRY_PATTERN.exec(trimmed);
  if (!match) {
    throw new PrimaryHostError('must be host or host:port');
  }
  const host = normalizeHost(match[1], match[2]);
  const port = match[3];
  if (port === undefined) {
    return host;
  }
  const portNumber = Number(port);
  if (portNumber < 1 || portNumber > 65535) {
    throw new PrimaryHostError(`port ${port} is not between 1 and 65535`);
  }
  return `${host}:${portNumber}`;
}

/**
 * Normalizes a whole override list. Throws a PrimaryHostError naming the first invalid or
 * repeated entry as `primaryHosts[i]`.
 */
export function normalizePrimaryHosts(entries: string[]): string[] {
  const normalized: string[] = [];
  for (const [index, entry] of entries.entries()) {
    let host: string;
    try {
      host = normalizePrimaryHost(entry);
    } catch (error) {
      const reason = error instanceof PrimaryHostError ? error.message : String(error);
      throw new PrimaryHostError(`primaryHosts[${index}] ${JSON.stringify(entry)}: ${reason}`);
    }
    if (normalized.includes(host)) {
      throw new PrimaryHostError(`primaryHosts[${index}] ${JSON.stringify(entry)} is listed twice`);
    }
    normalized.push(host);
  }
  return normalized;
}
