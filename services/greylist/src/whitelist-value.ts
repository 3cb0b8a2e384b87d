/**
 * Validation and normal form of static whitelist values, so that one entry has one spelling:
 * adding `192.0.2.7/24` lists `192.0.2.0/24`, and removing `192.0.2.0/24` finds it again.
 */
import { isIP } from 'node:net';
import { normalizeDomain } from '@secondary-mx/address';
import type { GreylistWhitelistKind } from '@secondary-mx/contracts';
import ipaddr from 'ipaddr.js';

export class InvalidWhitelistValueError extends Error {
  override name = 'InvalidWhitelistValueError';
}

/**
 * Returns the value in normal form. Throws InvalidWhitelistValueError, with a message that names
 * the value and the expected form, when it is not valid for the kind.
 *
 * - `client`: an IP address or network, returned as a network in CIDR notation with the host
 *   bits cleared. A single address gets /32 or /128, and an IPv4-mapped IPv6 network becomes
 *   the IPv4 network, because checks match clients that way.
 * - `name`: a host name suffix in lower-case A-label form, without a leading dot.
 * - `sender`: `@domain` for a domain with its subdomains, or `local@domain` for one address.
 *   Both are lower-cased, because greylisting compares senders in lower case.
 */
export function normalizeWhitelistValue(kind: GreylistWhitelistKind, raw: string): string {
  const text = raw.trim();
  switch (kind) {
    case 'client':
      return normalizeNetwork(text);
    case 'name':
      return normalizeNameSuffix(text);
    case 'sender':
      return normalizeSenderEntry(text);
  }
}

function normalizeNetwork(text: string): string {
  const invalid = new InvalidWhitelistValueError(
    `client ${JSON.stringify(text)} is not an IP address or network such as 192.0.2.0/24 or 2001:db8::/32`,
  );
  const [address = '', prefixText, extra] = text.split('/');
  // isIP accepts only standard notation, unlike ipaddr.js, which also takes `0x7f.1`.
  const family = isIP(address);
  if (family === 0 || extra !== undefined) {
    throw invalid;
  }
  const bits = family === 4 ? 32 : 128;
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) {
    throw invalid;
  }
  let prefix = prefixText === undefined ? bits : Number(prefixText);
  if (prefix > bits) {
    throw invalid;
  }

  let parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress() && prefix >= 96) {
    parsed = (parsed as ipaddr.IPv6).toIPv4Address();
    prefix -= 96;
  }
  if (parsed.kind() === 'ipv4') {
    return `${ipaddr.IPv4.networkAddressFromCIDR(`${parsed.toString()}/${prefix}`).toString()}/${prefix}`;
  }
  const network = ipaddr.IPv6.networkAddressFromCIDR(`${parsed.toString()}/${prefix}`);
  return `${network.toRFC5952String()}/${prefix}`;
}

function normalizeNameSuffix(text: string): string {
  const name = normalizeDomain(text.replace(/^\./, ''));
  if (name === undefined) {
    throw new InvalidWhitelistValueError(
      `name ${JSON.stringify(text)} is not a host name suffix such as relay.example`,
    );
  }
  return name;
}

function normalizeSenderEntry(text: string): string {
  const invalid = new InvalidWhitelistValueError(
    `sender ${JSON.stringify(text)} is not an address such as alice@example.com or a domain written as @example.com`,
  );
  const at = text.lastIndexOf('@');
  if (at < 0) {
    throw invalid;
  }
  const domain = normalizeDomain(text.slice(at + 1));
  const localPart = text.slice(0, at);
  // The local part is compared with what MAIL FROM gave, so it only has to be one token.
  if (domain === undefined || localPart.length > 64 || /[\s<>@\p{Cc}]/u.test(localPart)) {
    throw invalid;
  }
  return `${localPart.toLowerCase()}@${domain}`;
}
