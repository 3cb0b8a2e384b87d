/**
 * Client networks for greylisting. Retries of one message often come from another address of the
 * same sending cluster, so a triplet names the client's /24 (IPv4) or /64 (IPv6), not its address.
 *
 * IPv6 addresses that embed an IPv4 client get the /24 of that IPv4 address, because their /64
 * spans many unrelated clients. These are IPv4-mapped `::ffff:0:0/96`, the NAT64 well-known
 * prefix `64:ff9b::/96` (RFC 6052), through which a translator shows every IPv4 client, and
 * Teredo `2001::/32` (RFC 4380), whose /64 is shared by all clients of one Teredo server.
 *
 * NOTE: a translator's own network-specific NAT64 prefix cannot be told apart from native IPv6,
 * so its clients share the /64 that contains them.
 */
import { isIPv4, isIPv6 } from 'node:net';

export class InvalidAddressError extends Error {
  override name = 'InvalidAddressError';
}

/**
 * Returns the client's network in CIDR notation, with IPv6 in RFC 5952 form: `192.0.2.0/24`,
 * `2001:db8:1:2::/64` or `2001:db8::/64`. An IPv6 address that embeds an IPv4 client
 * (`::ffff:192.0.2.1`, `64:ff9b::192.0.2.1`, Teredo) gets that client's /24. Throws
 * InvalidAddressError when the text is not an IP address.
 */
export function clientNetwork(address: string): string {
  const text = stripDecoration(address);
  if (isIPv4(text)) {
    return ipv4Network(text.split('.').map(Number));
  }
  if (isIPv6(text)) {
    return ipv6Network(parseIPv6(text));
  }
  throw new InvalidAddressError(`client address ${JSON.stringify(address)} is not an IP address`);
}

/** Removes surrounding brackets and a zone id (`fe80::1%eth0`), which do not name a network. */
function stripDecoration(address: string): string {
  const unbracketed = address.trim().replace(/^\[(.*)\]$/, '$1');
  const zone = unbracketed.indexOf('%');
  return zone === -1 ? unbracketed : unbracketed.slice(0, zone);
}

function ipv4Network(octets: number[]): string {
  return `${octets[0]}.${octets[1]}.${octets[2]}.0/24`;
}

function ipv6Network(groups: number[]): string {
  const embedded = embeddedIPv4(groups);
  if (embedded !== undefined) {
    return ipv4Network(embedded);
  }
  // RFC 5952 form: the zero groups at the end of the prefix join the zero interface id in `::`.
  const prefix = groups.slice(0, 4);
  while (prefix.length > 0 && prefix[prefix.length - 1] === 0) {
    prefix.pop();
  }
  return `${prefix.map((group) => group.toString(16)).join(':')}::/64`;
}

/** Returns the octets of the IPv4 client that an IPv6 address embeds, if it embeds one. */
function embeddedIPv4(groups: number[]): number[] | undefined {
  const [g0, g1, g2, g3, g4, g5, g6 = 0, g7 = 0] = groups;
  const isMapped = g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0xffff;
  const isNat64 = g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0;
  if (isMapped || isNat64) {
    return [g6 >> 8, g6 & 0xff, g7 >> 8, g7 & 0xff];
  }
  // Teredo stores the client's public IPv4 address with every bit inverted in the last 32 bits.
  if (g0 === 0x2001 && g1 === 0) {
    const high = ~g6 & 0xffff;
    const low = ~g7 & 0xffff;
    return [high >> 8, high & 0xff, low >> 8, low & 0xff];
  }
  return undefined;
}

/** Expands an IPv6 address that isIPv6 accepted into its eight 16-bit groups. */
export function parseIPv6(text: string): number[] {
  const [head = '', tail] = text.split('::');
  const headGroups = parseGroups(head);
  if (tail === undefined) {
    return headGroups;
  }
  const tailGroups = parseGroups(tail);
  const zeros = new Array<number>(8 - headGroups.length - tailGroups.length).fill(0);
  return [...headGroups, ...zeros, ...tailGroups];
}

/** Parses colon-separated hex groups, where the last one may be a dotted IPv4 address. */
function parseGroups(text: string): number[] {
  if (text === '') {
    return [];
  }
  const groups: number[] = [];
  for (const part of text.split(':')) {
    if (part.includes('.')) {
      const [a = 0, b = 0, c = 0, d = 0] = part.split('.').map(Number);
      groups.push((a << 8) | b, (c << 8) | d);
    } else {
      groups.push(Number.parseInt(part, 16));
    }
  }
  return groups;
}
