/**
 * DNS blocklist lookups of the client address in the zones of MX_DNSBL_ZONES. The lookup starts
 * when the client connects and its result is kept for the session. Ingress rejects a listed
 * client's RCPT with 554 5.7.1, as Postfix's reject_rbl_client does, so the log shows the
 * envelope it rejected.
 *
 * A client is listed when the zone has an A record in 127.0.0.0/24 for its reversed address.
 * Other answers, such as the 127.255.255.x error codes of some lists, are logged and ignored,
 * and a zone that does not answer lets the client through: a blocklist outage must not stop mail.
 */
import { Resolver } from 'node:dns/promises';
import { isIPv4, isIPv6 } from 'node:net';
import type { Logger } from '@secondary-mx/logger';
import { smtpError } from './enhanced-codes.ts';

export interface DnsblListing {
  zone: string;
  /** The A records the zone returned, such as `127.0.0.2`. */
  codes: string[];
}

const LISTED = /^127\.0\.0\.\d{1,3}$/;

function expandIPv6(address: string): string {
  const [head = '', tail] = address.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const missing = 8 - headGroups.length - tailGroups.length;
  const groups = [...headGroups, ...Array<string>(tail === undefined ? 0 : missing).fill('0')];
  return [...groups, ...tailGroups].map((group) => group.padStart(4, '0')).join('');
}

/**
 * Returns the name to look up for a client address in a zone: the reversed octets of an IPv4
 * address, or the reversed nibbles of an IPv6 address (RFC 5782 section 2.4). IPv4-mapped IPv6
 * addresses are looked up as IPv4. Returns undefined for anything else.
 */
export function dnsblQueryName(address: string, zone: string): string | undefined {
  const plain = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  if (isIPv4(plain)) {
    return `${plain.split('.').reverse().join('.')}.${zone}`;
  }
  if (isIPv6(plain) && !plain.includes('.')) {
    const nibbles = expandIPv6(plain.toLowerCase()).split('').reverse().join('.');
    return `${nibbles}.${zone}`;
  }
  return undefined;
}

export class DnsblChecker {
  private readonly resolver: Resolver;
  private readonly sessions = new Map<string, Promise<DnsblListing | undefined>>();

  constructor(
    private readonly zones: string[],
    servers: string[],
    timeoutMs: number,
    private readonly logger: Logger,
  ) {
    this.resolver = new Resolver({ timeout: timeoutMs, tries: 1 });
    if (servers.length > 0) {
      this.resolver.setServers(servers);
    }
  }

  get enabled(): boolean {
    return this.zones.length > 0;
  }

  /** Starts the lookup for a session; later calls for the same session reuse it. */
  listing(sessionId: string, address: string): Promise<DnsblListing | undefined> {
    let pending = this.sessions.get(sessionId);
    if (!pending) {
      pending = this.lookUp(sessionId, address);
      this.sessions.set(sessionId, pending);
    }
    return pending;
  }

  /** Drops a closed session's result. */
  forget(sessionId: string): void {
    this.sessions.delete(sessionId);
  }

  /**
   * Resolves with the 554 5.7.1 error for a listed client, or undefined. Waits for the lookup
   * that started at connect.
   */
  async check(sessionId: string, address: string): Promise<Error | undefined> {
    if (!this.enabled) {
      return undefined;
    }
    const listed = await this.listing(sessionId, address);
    if (!listed) {
      return undefined;
    }
    const literal = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
    return smtpError(
      554,
      '5.7.1',
      `Service unavailable; client host [${literal}] blocked using ${listed.zone}`,
    );
  }

  private async lookUp(sessionId: string, address: string): Promise<DnsblListing | undefined> {
    const results = await Promise.all(
      this.zones.map((zone) => this.lookUpZone(sessionId, address, zone)),
    );
    return results.find((result) => result !== undefined);
  }

  private async lookUpZone(
    sessionId: string,
    address: string,
    zone: string,
  ): Promise<DnsblListing | undefined> {
    const name = dnsblQueryName(address, zone);
    if (!name) {
      return undefined;
    }
    let answers: string[];
    try {
      answers = await this.resolver.resolve4(name);
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code !== 'ENOTFOUND' && code !== 'ENODATA') {
        this.logger.warn(
          { session: sessionId, client: address, zone, err: error },
          'DNSBL lookup failed, client not treated as listed',
        );
      }
      return undefined;
    }
    const codes = answers.filter((answer) => LISTED.test(answer));
    if (codes.length < answers.length) {
      this.logger.warn(
        { session: sessionId, client: address, zone, answers },
        'DNSBL answered outside 127.0.0.0/24, answer ignored',
      );
    }
    return codes.length > 0 ? { zone, codes } : undefined;
  }
}
