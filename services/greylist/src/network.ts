/**
 * Client networks for greylisting. Retries of one message often come from another address of the
 * same sending cluster, so a triplet names the client's /24 (IPv4) or /64 (IPv6), not its address.
 */
import { isIPv4, isIPv6 } from 'node:net';

export class InvalidAddressError extends Error {
  override name = 'InvalidAddressError';
}

/**
 * Returns the client's network in CIDR notation, with IPv6 in RFC 5952 form: `192.0.2.0/24`,
 * `2001:db8:1:2::/64` or `2001:db8::/64`. An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`)
 * counts as IPv4. Throws InvalidAddressError when the text is not an IP address.
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
  const isMappedIPv4 = groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff;
  if (isMappedIPv4) {
    const high = groups[6] as number;
    const low = groups[7] as number;
    return ipv4Network([high >> 8, high & 0xff, low >> 8, low & 0xff]);
  }
  // RFC 5952 form: the zero groups at the end of the prefix join the zero interface id in `::`.
  const prefix = groups.slice(0, 4);
  while (prefix.length > 0 && prefix[prefix.length - 1] === 0) {
    prefix.pop();
  }
  return `${prefix.map((group) => group.toString(16)).join(':')}::/64`;
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
