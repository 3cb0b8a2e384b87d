/**
 * Checks a member domain's MX records as senders resolve them now: whether we are listed,
 * whether our preference number is larger than every other host's, which host is the primary
 * and whether it accepts an SMTP session. Each problem comes with what to change.
 */
import { isIP } from 'node:net';
import { parseHostPort } from '@secondary-mx/config';
import type { DnsLookup } from '@secondary-mx/dns';
import { checkSmtp, type SmtpCheckResult } from './smtp-check.ts';

export interface MxEntry {
  /** Lower-case host name without the trailing dot; `.` for a null MX. */
  host: string;
  preference: number;
}

/** Outcome of the MX lookup, where `null-mx` means only null MX records (RFC 7505). */
export type MxLookupOutcome = 'ok' | 'nxdomain' | 'nodata' | 'null-mx' | 'failed';

/**
 * `no address`: the host has no A or AAAA record. `loops back`: its greeting names one of our
 * own names, so it is this server.
 */
export type PrimarySmtpStatus = SmtpCheckResult['status'] | 'no address' | 'loops back';

export interface PrimaryCheck {
  host: string;
  port: number;
  /** Null for a primaryHosts entry. */
  preference: number | null;
  source: 'mx' | 'primaryHosts';
  smtp: PrimarySmtpStatus;
  /** The greeting when the session succeeded, else what went wrong. */
  reply?: string;
  /** The address of the successful session, else the last one tried. */
  address?: string;
}

export interface DnsCheckReport {
  domain: string;
  mxLookup: MxLookupOutcome;
  /** The DNS error code when mxLookup is `failed`. */
  mxError?: string;
  listed: boolean;
  /** The lowest preference among our own MX records; null when we are not listed. */
  ourPreference: number | null;
  primary: PrimaryCheck | null;
  records: MxEntry[];
  preferenceOk: boolean;
  ok: boolean;
  problems: string[];
  summary: string;
}

export interface DnsCheckOptions {
  dns: DnsLookup;
  /** MX_SELF_NAMES and MX_HOSTNAME, lower case. */
  selfNames: ReadonlySet<string>;
  hostname: string;
  deliveryPort: number;
  smtpTimeoutMs: number;
}

/** Preference suggested for our record when the current one is wrong or missing. */
const USUAL_PREFERENCE = 200;
const MAX_PREFERENCE = 65535;

function normalizeHost(name: string): string {
  const host = name.trim().toLowerCase().replace(/\.$/, '');
  return host === '' ? '.' : host;
}

/** Returns a preference larger than every other host's: 200 unless that is not enough. */
function suggestedPreference(others: readonly MxEntry[]): number {
  const highest = Math.max(0, ...others.map((entry) => entry.preference));
  return highest < USUAL_PREFERENCE ? USUAL_PREFERENCE : Math.min(MAX_PREFERENCE, highest + 10);
}

interface Target {
  host: string;
  port: number;
  preference: number | null;
  source: PrimaryCheck['source'];
}

/** Parses primaryHosts entries as deliveries do: `host`, `host:port` or an IP address. */
function overrideTargets(primaryHosts: readonly string[], deliveryPort: number): Target[] {
  const targets: Target[] = [];
  for (const entry of primaryHosts) {
    const trimmed = entry.trim();
    const parsed =
      isIP(trimmed) !== 0
        ? { host: trimmed, port: deliveryPort }
        : parseHostPort(trimmed, deliveryPort);
    if (!(parsed instanceof Error)) {
      targets.push({
        host: normalizeHost(parsed.host),
        port: parsed.port,
        preference: null,
        source: 'primaryHosts',
      });
    }
  }
  return targets;
}

export class DnsChecker {
  constructor(private readonly options: DnsCheckOptions) {}

  async check(domain: string, primaryHosts: readonly string[]): Promise<DnsCheckReport> {
    const { dns, selfNames, deliveryPort } = this.options;
    const lookup = await dns.mx(domain);
    const records = lookup.ok
      ? lookup.records
          .map((record) => ({
            host: normalizeHost(record.exchange),
            preference: record.preference,
          }))
          .sort((a, b) => a.preference - b.preference || a.host.localeCompare(b.host))
      : [];
    const usable = records.filter((record) => record.host !== '.');
    let mxLookup: MxLookupOutcome = lookup.ok ? 'ok' : lookup.failure;
    if (lookup.ok && usable.length === 0) {
      mxLookup = 'null-mx';
    }

    const ours = usable.filter((record) => selfNames.has(record.host));
    const others = usable.filter((record) => !selfNames.has(record.host));
    const listed = ours.length > 0;
    const ourPreference = listed ? Math.min(...ours.map((record) => record.preference)) : null;
    const preferenceOk =
      ourPreference !== null &&
      others.length > 0 &&
      others.every((record) => record.preference < ourPreference);

    let targets: Target[];
    if (primaryHosts.length > 0) {
      targets = overrideTargets(primaryHosts, deliveryPort);
    } else {
      const lowest = others[0]?.preference;
      targets = others
        .filter((record) => record.preference === lowest)
        .map((record) => ({ ...record, port: deliveryPort, source: 'mx' as const }));
    }
    const primary = await this.checkPrimary(targets);

    const report: Omit<DnsCheckReport, 'ok' | 'problems' | 'summary'> = {
      domain,
      mxLookup,
      ...(lookup.ok ? {} : { mxError: lookup.error }),
      listed,
      ourPreference,
      primary,
      records,
      preferenceOk,
    };
    const findings = this.findings(report, others, primaryHosts.length > 0);
    return {
      ...report,
      ok: findings.length === 0,
      problems: findings.map((finding) => finding.problem),
      summary: this.summarize(report, findings),
    };
  }

  /**
   * Checks the targets in order and returns the first that answers SMTP, else the first one
   * with its failure. Each target's addresses are tried in order, IPv4 first.
   */
  private async checkPrimary(targets: readonly Target[]): Promise<PrimaryCheck | null> {
    let first: PrimaryCheck | undefined;
    for (const target of targets) {
      const checked = await this.checkTarget(target);
      if (checked.smtp === 'answers') {
        return checked;
      }
      first ??= checked;
    }
    return first ?? null;
  }

  private async checkTarget(target: Target): Promise<PrimaryCheck> {
    const { dns, hostname, smtpTimeoutMs } = this.options;
    let addresses: string[];
    let lookupError = '';
    if (isIP(target.host) !== 0) {
      addresses = [target.host];
    } else {
      const [v4, v6] = await Promise.all([dns.a(target.host), dns.aaaa(target.host)]);
      addresses = [...(v4.ok ? v4.records : []), ...(v6.ok ? v6.records : [])];
      lookupError = [v4, v6]
        .map((result) => (result.ok ? '' : result.error))
        .filter(Boolean)
        .join(', ');
    }
    if (addresses.length === 0) {
      return {
        ...target,
        smtp: 'no address',
        reply: `no A or AAAA record (${lookupError || 'no records'})`,
      };
    }
    let last: PrimaryCheck | undefined;
    for (const address of addresses) {
      const result = await checkSmtp(address, target.port, hostname, smtpTimeoutMs);
      const self =
        result.greetingName !== undefined && this.options.selfNames.has(result.greetingName);
      const smtp = result.status === 'answers' && self ? 'loops back' : result.status;
      last = { ...target, smtp, reply: result.reply, address };
      if (smtp === 'answers') {
        return last;
      }
    }
    return last as PrimaryCheck;
  }

  private findings(
    report: Omit<DnsCheckReport, 'ok' | 'problems' | 'summary'>,
    others: readonly MxEntry[],
    hasOverride: boolean,
  ): Finding[] {
    const { domain, primary } = report;
    const us = this.options.hostname;
    const ourRecord = (preference: number) => `\`@ MX ${preference} ${us}.\``;
    const wanted = `\`@ MX 10 <your mail server>.\` and ${ourRecord(USUAL_PREFERENCE)}`;
    const findings: Finding[] = [];

    switch (report.mxLookup) {
      case 'failed':
        findings.push({
          short: `the MX lookup failed (${report.mxError})`,
          problem: `The MX lookup for ${domain} failed (${report.mxError}): check that the domain's name servers respond, then run the check again.`,
        });
        break;
      case 'nxdomain':
        findings.push({
          short: 'the domain does not exist in DNS',
          problem: `${domain} does not exist in DNS: publish its zone with ${wanted}.`,
        });
        break;
      case 'nodata':
        findings.push({
          short: 'it has no MX records',
          problem: `${domain} has no MX records, so senders deliver to its address records and never to us: publish ${wanted}.`,
        });
        break;
      case 'null-mx':
        findings.push({
          short: 'it publishes a null MX',
          problem: `${domain} publishes a null MX (\`MX 0 .\`), which tells senders that it accepts no mail: replace it with ${wanted}.`,
        });
        break;
      case 'ok':
        if (!report.listed) {
          findings.push({
            short: 'we are not listed',
            problem: `We are not among the MX hosts of ${domain}, so no mail reaches us while the primary is down: add ${ourRecord(suggestedPreference(others))}.`,
          });
        } else if (others.length === 0) {
          findings.push({
            short: 'only we are listed',
            problem: hasOverride
              ? `Only we are listed as MX host of ${domain}, so all its mail goes through us to the primaryHosts override: add your own mail server with a lower preference, such as \`@ MX 10 <your mail server>.\`.`
              : `Only we are listed as MX host of ${domain}, so all its mail comes to us and we have no primary to deliver it to: add your own mail server with a lower preference, such as \`@ MX 10 <your mail server>.\`.`,
          });
        } else if (!report.preferenceOk) {
          const highest = others.reduce((a, b) => (b.preference > a.preference ? b : a));
          findings.push({
            short: `our preference ${report.ourPreference} is not larger than ${highest.preference} of ${highest.host}`,
            problem: `Our preference ${report.ourPreference} is not larger than ${highest.preference} of ${highest.host}, so senders may try us before that host: change our record to ${ourRecord(suggestedPreference(others))}.`,
          });
        }
        break;
    }

    if (primary) {
      const name =
        primary.source === 'primaryHosts'
          ? `The primaryHosts entry ${primary.host}:${primary.port}`
          : `The primary ${primary.host} (preference ${primary.preference})`;
      const shortName =
        primary.source === 'primaryHosts' ? `${primary.host}:${primary.port}` : primary.host;
      if (primary.smtp === 'no address') {
        findings.push({
          short: `the primary ${shortName} has no address`,
          problem: `${name} has no address: ${primary.reply}. Publish its A or AAAA record.`,
        });
      } else if (primary.smtp === 'no answer') {
        findings.push({
          short: `the primary ${shortName} does not answer SMTP`,
          problem: `${name} does not answer SMTP on port ${primary.port} (${primary.reply}), so mail for ${domain} waits here until it does: check that the server runs and accepts connections from us.`,
        });
      } else if (primary.smtp === 'rejects') {
        findings.push({
          short: `the primary ${shortName} rejects our EHLO or greets with an error`,
          problem: `${name} answered ${primary.reply} instead of accepting a session, so deliveries to it fail: check its configuration.`,
        });
      } else if (primary.smtp === 'loops back') {
        findings.push({
          short: `the primary ${shortName} is this server`,
          problem: `${name} greets with our own name, so it is this server and mail would loop: point it at your own mail server.`,
        });
      }
    }
    return findings;
  }

  private summarize(
    report: Omit<DnsCheckReport, 'ok' | 'problems' | 'summary'>,
    findings: readonly Finding[],
  ): string {
    const { domain, primary } = report;
    if (findings.length > 0) {
      return `${domain} is not set up correctly: ${findings.map((finding) => finding.short).join(', ')}.`;
    }
    const target =
      primary?.source === 'primaryHosts'
        ? `the primaryHosts override ${primary.host}:${primary.port} answers SMTP`
        : `the primary ${primary?.host} (preference ${primary?.preference}) answers SMTP`;
    return `${domain} is set up correctly: we are listed with preference ${report.ourPreference} behind every other MX host, and ${target}.`;
  }
}

interface Finding {
  /** A phrase for the summary sentence. */
  short: string;
  /** A full sentence that states what is wrong and what to change. */
  problem: string;
}
