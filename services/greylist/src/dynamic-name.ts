/**
 * Recognition of reverse DNS names of dynamic access pools, whose forward-confirmed names must not
 * group a whole provider's customers. A name is dynamic when the labels in front of its
 * organizational domain embed the client's address or contain a generic pool word together with
 * a digit.
 *
 * Embedded address forms, for 127.7.0.1:
 * - decimal octets in any order, with any separators and zero padding: `127-0-7-1`, `1.0.7.127`,
 *   `127-000-007-001`, or the twelve padded digits run together (`127000007001`);
 * - the address as eight hex digits, forward or reversed: `p7f070001`, `0100077f`;
 * - the address as one decimal number: `2131165185`.
 *
 * Embedded IPv6 address forms, for 2001:db8::9:
 * - the 32 nibbles, forward or reversed, with or without separators;
 * - the groups with any of `-`, `.`, `_` as separators, forward or reversed, with or without
 *   leading zeros and with the `::` compression: `2001-db8--9`, `2001-0db8-0-0-0-0-0-0009`.
 *
 * NOTE: names that embed only part of an address (the last two octets, an IPv6 interface id)
 * are dynamic only through a pool word.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { parseIPv6 } from './network.ts';

/**
 * Generic words of access pool names. A label part that starts with one (`dialup`, `pools`) or
 * ends in `dsl` (`adsl`, `vdsl`) counts. `static` is left out, because a static line is dynamic
 * here only when its name also embeds the address.
 */
const POOL_WORDS = [
  'dynamic',
  'dyn',
  'dhcp',
  'pool',
  'dial',
  'dsl',
  'cable',
  'ppp',
  'client',
  'customer',
  'broadband',
];

/**
 * Returns true when `hostPart`, the labels in front of the organizational domain, marks the name
 * of `address` as one of a dynamic access pool. `address` may be IPv4, IPv4-mapped IPv6 or IPv6.
 */
export function isDynamicName(hostPart: string, address: string): boolean {
  const host = hostPart.toLowerCase();
  return hasPoolWord(host) || embedsAddress(host, address);
}

function hasPoolWord(host: string): boolean {
  if (!/\d/.test(host)) {
    return false;
  }
  const words = host.split(/[^a-z]+/).filter((word) => word !== '');
  return words.some(
    (word) => word.endsWith('dsl') || POOL_WORDS.some((pool) => word.startsWith(pool)),
  );
}

function embedsAddress(host: string, address: string): boolean {
  const text = address.trim().replace(/^\[(.*)\]$/, '$1');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(text);
  const ipv4 = mapped?.[1] ?? text;
  if (isIPv4(ipv4)) {
    return embedsIPv4(host, ipv4.split('.').map(Number));
  }
  if (isIPv6(text)) {
    return embedsIPv6(host, parseIPv6(text));
  }
  return false;
}

function embedsIPv4(host: string, octets: number[]): boolean {
  const numbers = host
    .split(/\D+/)
    .filter((part) => part !== '')
    .map((part) => part.replace(/^0+(?=\d)/, ''));

  // Four consecutive numbers that are the four octets in any order.
  const sortedOctets = octets.map(String).sort().join('.');
  for (let start = 0; start + 4 <= numbers.length; start += 1) {
    const window = numbers.slice(start, start + 4).sort();
    if (window.join('.') === sortedOctets) {
      return true;
    }
  }

  const reversed = [...octets].reverse();
  const padded = (parts: number[]): string =>
    parts.map((octet) => String(octet).padStart(3, '0')).join('');
  const hex = (parts: number[]): string =>
    parts.map((octet) => octet.toString(16).padStart(2, '0')).join('');
  const whole = String(octets.reduce((value, octet) => value * 256 + octet, 0));

  const digits = host.replace(/[.\-_]/g, '');
  return (
    host.includes(padded(octets)) ||
    host.includes(padded(reversed)) ||
    digits.includes(hex(octets)) ||
    digits.includes(hex(reversed)) ||
    numbers.includes(whole)
  );
}

function embedsIPv6(host: string, groups: number[]): boolean {
  const nibbles = groups.map((group) => group.toString(16).padStart(4, '0')).join('');
  const hexDigits = host.replace(/[.\-_]/g, '');
  const reversedNibbles = [...nibbles].reverse().join('');
  if (hexDigits.includes(nibbles) || hexDigits.includes(reversedNibbles)) {
    return true;
  }

  // Runs of separated tokens that read as the address, where an empty token between two
  // separators is the `::` compression.
  const tokens = host.split(/[.\-_]/);
  const expected = groups.join(':');
  for (const sequence of [tokens, [...tokens].reverse()]) {
    for (let start = 0; start < sequence.length; start += 1) {
      for (let end = start + 2; end <= Math.min(sequence.length, start + 10); end += 1) {
        const candidate = sequence.slice(start, end).join(':');
        if (isIPv6(candidate) && parseIPv6(candidate).join(':') === expected) {
          return true;
        }
      }
    }
  }
  return false;
}
