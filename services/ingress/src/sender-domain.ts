/**
 * The DNS check of the MAIL FROM domain, so that ingress never accepts mail it could not
 * bounce: a domain with a null MX (RFC 7505) gets 550 5.7.27, a domain that does not exist or
 * has no MX, A or AAAA record gets 450 4.1.8, and a lookup that times out or fails gets
 * 451 4.4.3. Like Postfix's reject_unknown_sender_domain, the check stops at the domain's own
 * records and does not resolve the MX hosts.
 */
import { Resolver } from 'node:dns/promises';
import { smtpError } from './enhanced-codes.ts';

/** Resolver error codes that mean the name or its records do not exist. */
const ABSENT = new Set(['ENOTFOUND', 'ENODATA']);

function errorCode(error: unknown): string {
  return (error as { code?: string }).code ?? 'EUNKNOWN';
}

/** How a sender domain can receive mail, as far as DNS tells. */
type DomainStatus = 'receives-mail' | 'null-mx' | 'absent';

/**
 * How long a domain's status is kept, so a stream of mail from one domain costs one lookup a
 * minute rather than one per message. Lookup failures are not kept.
 */
const STATUS_TTL_MS = 60_000;
/** Most domains kept; the oldest entry is dropped first. */
const MAX_CACHED_DOMAINS = 10_000;

export class SenderDomainChecker {
  private readonly resolver: Resolver;
  private readonly statuses = new Map<string, { status: DomainStatus; until: number }>();

  constructor(servers: string[], timeoutMs: number) {
    this.resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
    if (servers.length > 0) {
      this.resolver.setServers(servers);
    }
  }

  /**
   * Looks up the sender's domain (A-label form). Resolves with undefined when it can receive
   * mail, or with the smtp-server error that rejects MAIL FROM.
   */
  async check(sender: string, domain: string): Promise<Error | undefined> {
    let status: DomainStatus;
    try {
      status = await this.status(domain);
    } catch (error) {
      return Object.assign(
        smtpError(
          451,
          '4.4.3',
          `<${sender}>: DNS lookup of sender domain ${domain} failed (${errorCode(error)}), try again later`,
        ),
        { cause: error },
      );
    }
    if (status === 'null-mx') {
      return smtpError(
        550,
        '5.7.27',
        `<${sender}>: sender domain ${domain} does not accept mail (null MX)`,
      );
    }
    if (status === 'absent') {
      return smtpError(
        450,
        '4.1.8',
        `<${sender}>: sender address rejected, domain ${domain} has no MX, A or AAAA record`,
      );
    }
    return undefined;
  }

  /** Returns the domain's status from the cache or from DNS; throws when a lookup fails. */
  private async status(domain: string): Promise<DomainStatus> {
    const cached = this.statuses.get(domain);
    if (cached && cached.until > Date.now()) {
      return cached.status;
    }
    const status = await this.lookUp(domain);
    this.statuses.delete(domain);
    this.statuses.set(domain, { status, until: Date.now() + STATUS_TTL_MS });
    if (this.statuses.size > MAX_CACHED_DOMAINS) {
      const oldest = this.statuses.keys().next().value;
      if (oldest !== undefined) {
        this.statuses.delete(oldest);
      }
    }
    return status;
  }

  private async lookUp(domain: string): Promise<DomainStatus> {
    let exchanges: string[];
    try {
      exchanges = (await this.resolver.resolveMx(domain)).map((record) => record.exchange);
    } catch (error) {
      if (!ABSENT.has(errorCode(error))) {
        throw error;
      }
      exchanges = [];
    }
    if (exchanges.length > 0) {
      // Node returns the null MX target `.` as an empty exchange.
      if (exchanges.every((exchange) => exchange === '' || exchange === '.')) {
        return 'null-mx';
      }
      return 'receives-mail';
    }

    // No MX records: RFC 5321 section 5.1 falls back to the domain's own addresses.
    const lookups = await Promise.allSettled([
      this.resolver.resolve4(domain),
      this.resolver.resolve6(domain),
    ]);
    if (lookups.some((lookup) => lookup.status === 'fulfilled' && lookup.value.length > 0)) {
      return 'receives-mail';
    }
    for (const lookup of lookups) {
      if (lookup.status === 'rejected' && !ABSENT.has(errorCode(lookup.reason))) {
        throw lookup.reason;
      }
    }
    return 'absent';
  }
}
