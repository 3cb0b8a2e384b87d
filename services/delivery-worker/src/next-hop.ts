/**
 * Chooses where a member domain's mail goes: the administrator's next-hop override when the
 * domain has one, otherwise the MX hosts that are more preferred than our own MX entry. Hosts
 * and addresses that are ourselves are dropped. Every failure is temporary except a null MX,
 * so a member's mail waits out a DNS mistake instead of bouncing.
 */
import { isIP } from 'node:net';
import { parseHostPort } from '@secondary-mx/config';
import type { DnsLookup, LookupFailure, MxRecord } from '@secondary-mx/dns';
import { type LocalFailure, localVerdict, type ReplyVerdict } from './reply-classification.ts';
import { normalizeHostName, type SelfIdentity } from './self-identity.ts';

export interface NextHop {
  /** Host name, or the IP literal of an override entry; the remote MTA in outcomes. */
  host: string;
  port: number;
  /** Addresses to try in order: IPv4 first, then IPv6. */
  addresses: string[];
}

export type NextHopPlan = { ok: true; hops: NextHop[] } | { ok: false; verdict: ReplyVerdict };

interface HopTarget {
  host: string;
  port: number;
}

interface HostAddresses {
  addresses: string[];
  /** Set when no address was found: why, and the DNS error for the reply text. */
  failure?: { kind: LookupFailure; error: string };
}

const HOST_NAME = /^[a-z0-9_]([a-z0-9_-]*[a-z0-9])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9])?)*$/i;

function describeFailure(kind: LookupFailure, error: string | undefined): string {
  if (kind === 'nxdomain') {
    return 'name does not exist (NXDOMAIN)';
  }
  if (kind === 'nodata') {
    return 'no A or AAAA records';
  }
  return `lookup failed (${error ?? 'unknown error'})`;
}

function failed(failure: LocalFailure, text: string): NextHopPlan {
  return { ok: false, verdict: localVerdict(failure, text) };
}

/** Parses an override entry: `host`, `host:port`, `[IPv6]:port` or a bare IPv6 address. */
export function parseHopTarget(entry: string, defaultPort: number): HopTarget | undefined {
  const trimmed = entry.trim();
  if (isIP(trimmed) !== 0) {
    return { host: trimmed, port: defaultPort };
  }
  if (trimmed.startsWith(':')) {
    return undefined;
  }
  const parsed = parseHostPort(trimmed, defaultPort);
  if (parsed instanceof Error) {
    return undefined;
  }
  const host = normalizeHostName(parsed.host);
  if (isIP(host) === 0 && !HOST_NAME.test(host)) {
    return undefined;
  }
  return { host, port: parsed.port };
}

export class NextHopResolver {
  constructor(
    private readonly dns: DnsLookup,
    private readonly self: SelfIdentity,
    private readonly deliveryPort: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** Returns the next hops for a domain in the order to try them, or the verdict for all its recipients. */
  async resolve(domain: string, primaryHosts: readonly string[]): Promise<NextHopPlan> {
    const name = normalizeHostName(domain);
    if (primaryHosts.length > 0) {
      return this.resolveOverride(name, primaryHosts);
    }
    return this.resolveFromDns(name);
  }

  /**
   * Resolves like resolve(), but returns a 4.4.3 verdict when the DNS lookups are still busy at
   * `deadline` (epoch ms). The lookups go on in the background and fill the cache.
   */
  async resolveBefore(
    domain: string,
    primaryHosts: readonly string[],
    deadline: number,
  ): Promise<NextHopPlan> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<NextHopPlan>((resolve) => {
      timer = setTimeout(
        () => resolve(failed('dnsFailed', `DNS lookups for ${domain} timed out`)),
        Math.max(0, deadline - Date.now()),
      );
    });
    try {
      return await Promise.race([this.resolve(domain, primaryHosts), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async resolveOverride(
    domain: string,
    primaryHosts: readonly string[],
  ): Promise<NextHopPlan> {
    const targets: HopTarget[] = [];
    const invalid: string[] = [];
    for (const entry of primaryHosts) {
      const target = parseHopTarget(entry, this.deliveryPort);
      if (target) {
        targets.push(target);
      } else {
        invalid.push(JSON.stringify(entry));
      }
    }
    if (targets.length === 0) {
      return failed(
        'misconfigured',
        `next-hop override of ${domain} has no valid entry: ${invalid.join(', ')}`,
      );
    }
    return this.resolveTargets(domain, targets);
  }

  private async resolveFromDns(domain: string): Promise<NextHopPlan> {
    const mx = await this.dns.mx(domain);
    if (mx.ok) {
      return this.resolveMxRecords(domain, mx.records);
    }
    if (mx.failure === 'failed') {
      return failed('dnsFailed', `MX lookup for ${domain} failed (${mx.error})`);
    }
    // RFC 5321 section 5.1: a domain without MX records is its own mail exchanger (implicit MX).
    return this.resolveTargets(domain, [{ host: domain, port: this.deliveryPort }]);
  }

  private resolveMxRecords(
    domain: string,
    records: MxRecord[],
  ): Promise<NextHopPlan> | NextHopPlan {
    // RFC 7505: a single MX with the root as exchange means the domain accepts no mail. Null
    // records published next to real ones break the RFC and are ignored.
    const usable = records.filter((record) => record.exchange !== '' && record.exchange !== '.');
    if (usable.length === 0) {
      return failed('nullMx', `domain ${domain} accepts no mail (null MX)`);
    }
    const candidates = this.selectCandidates(usable);
    if (candidates.length === 0) {
      return failed('loopsBack', `mail for ${domain} loops back to myself`);
    }
    return this.resolveTargets(
      domain,
      candidates.map((record) => ({
        host: normalizeHostName(record.exchange),
        port: this.deliveryPort,
      })),
    );
  }

  /**
   * Keeps the MX hosts more preferred (lower number) than our own lowest entry, or all of them
   * when we are not listed, sorted by preference with equal ones shuffled (RFC 5321 section 5.1).
   */
  private selectCandidates(records: MxRecord[]): MxRecord[] {
    const ownPreferences = records
      .filter((record) => this.self.isSelfName(record.exchange))
      .map((record) => record.preference);
    const ownPreference = Math.min(Infinity, ...ownPreferences);
    const candidates = records.filter((record) => record.preference < ownPreference);
    for (let i = candidates.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [candidates[i], candidates[j]] = [candidates[j] as MxRecord, candidates[i] as MxRecord];
    }
    return candidates.sort((left, right) => left.preference - right.preference);
  }

  /** Resolves each target's addresses and drops those that are ourselves, by name or address. */
  private async resolveTargets(domain: string, targets: HopTarget[]): Promise<NextHopPlan> {
    const others = targets.filter((target) => !this.self.isSelfName(target.host));
    let selfSkipped = targets.length - others.length;
    const resolved = await Promise.all(others.map((target) => this.addressesOf(target.host)));
    const hops: NextHop[] = [];
    const dnsErrors: string[] = [];
    let lookupFailed = false;
    others.forEach((target, index) => {
      const found = resolved[index] as HostAddresses;
      const addresses = found.addresses.filter(
        (address) => !this.self.isSelfAddress(address, target.port),
      );
      if (addresses.length > 0) {
        hops.push({ ...target, addresses });
      } else if (found.addresses.length > 0) {
        selfSkipped += 1;
      } else if (found.failure) {
        lookupFailed ||= found.failure.kind === 'failed';
        dnsErrors.push(`${target.host}: ${found.failure.error}`);
      }
    });
    if (hops.length > 0) {
      return { ok: true, hops };
    }
    if (lookupFailed) {
      return failed(
        'dnsFailed',
        `address lookup for the next hops of ${domain} failed: ${dnsErrors.join(', ')}`,
      );
    }
    if (selfSkipped > 0) {
      return failed('loopsBack', `mail for ${domain} loops back to myself`);
    }
    return failed(
      'noRoute',
      `no address found for the next hops of ${domain}: ${dnsErrors.join(', ')}`,
    );
  }

  private async addressesOf(host: string): Promise<HostAddresses> {
    if (isIP(host) !== 0) {
      return { addresses: [host] };
    }
    const [v4, v6] = await Promise.all([this.dns.a(host), this.dns.aaaa(host)]);
    const addresses = [...(v4.ok ? v4.records : []), ...(v6.ok ? v6.records : [])];
    if (addresses.length > 0) {
      return { addresses };
    }
    const failures = [v4, v6].flatMap((result) => (result.ok ? [] : [result]));
    const worst = failures.find((result) => result.failure === 'failed') ?? failures[0];
    const kind = worst?.failure ?? 'nodata';
    return { addresses: [], failure: { kind, error: describeFailure(kind, worst?.error) } };
  }
}
