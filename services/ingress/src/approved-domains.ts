/**
 * The set of approved member domains that ingress relays for, each with its recipient check and
 * greylist switch, and the set of suspended ones. Loaded from queue-store over domains.list at start, again on every
 * `domains.changed` control event and every MX_DOMAIN_REFRESH as a fallback for a missed event.
 */
import { compileRecipientList } from '@secondary-mx/address';
import { type Broker, BrokerUnavailableError } from '@secondary-mx/amqp';
import { type DomainPolicy, DomainsListReplySchema, QUEUE } from '@secondary-mx/contracts';
import type { Logger } from '@secondary-mx/logger';
import type { SpoolAvailability } from './spool-availability.ts';

/** A domain's policy with its recipient list compiled for matching. */
export interface DomainPolicyEntry extends Omit<DomainPolicy, 'recipients'> {
  /** Returns whether a local part matches the recipient list. */
  isListed(localPart: string): boolean;
}

/** The policy of an approved domain that queue-store sent none for. */
const DEFAULT_POLICY: DomainPolicyEntry = {
  recipientCheck: 'none',
  localPartCaseSensitive: false,
  greylist: true,
  primaryHosts: [],
  isListed: () => false,
};

function compilePolicy(policy: DomainPolicy): DomainPolicyEntry {
  const { recipients, ...rest } = policy;
  return { ...rest, isListed: compileRecipientList(recipients, policy.localPartCaseSensitive) };
}

const RELOAD_TIMEOUT_MS = 5000;
const RETRY_MS = 1000;

export class ApprovedDomains {
  private domains: Set<string> | undefined;
  private suspended = new Set<string>();
  private policies = new Map<string, DomainPolicyEntry>();
  private timer: NodeJS.Timeout | undefined;
  private reloading: Promise<void> | undefined;
  private reloadAgain = false;
  private stopped = false;

  /** `spool` records whether each domains.list request succeeded. */
  constructor(
    private readonly broker: Broker,
    private readonly logger: Logger,
    private readonly refreshMs: number,
    private readonly spool?: SpoolAvailability,
  ) {}

  /** True once the list has been loaded at least once. */
  get loaded(): boolean {
    return this.domains !== undefined;
  }

  get size(): number {
    return this.domains?.size ?? 0;
  }

  /** Returns whether the lower-case A-label domain is approved; false until loaded. */
  has(domain: string): boolean {
    return this.domains?.has(domain) ?? false;
  }

  /** Returns whether the lower-case A-label domain is suspended; false until loaded. */
  isSuspended(domain: string): boolean {
    return this.suspended.has(domain);
  }

  /** Returns the policy of an approved domain; the defaults for a domain without one. */
  policy(domain: string): DomainPolicyEntry {
    return this.policies.get(domain) ?? DEFAULT_POLICY;
  }

  start(): void {
    void this.reload();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /**
   * Reloads now. A call while a reload is in flight runs one more reload after it, because the
   * change that caused the call may have missed the request already sent.
   */
  reload(): Promise<void> {
    if (this.reloading) {
      this.reloadAgain = true;
      return this.reloading;
    }
    this.reloading = this.fetch().finally(() => {
      this.reloading = undefined;
      if (this.reloadAgain) {
        this.reloadAgain = false;
        void this.reload();
      }
    });
    return this.reloading;
  }

  private async fetch(): Promise<void> {
    let nextInMs = this.refreshMs;
    try {
      await this.broker.whenConnected();
      let content: Buffer;
      try {
        content = await this.broker.call(QUEUE.domainsList, Buffer.from('{}'), RELOAD_TIMEOUT_MS);
      } catch (error) {
        // A lost RabbitMQ connection is no sign of a queue-store failure.
        if (!(error instanceof BrokerUnavailableError)) {
          this.spool?.failed(`domains.list failed: ${(error as Error).message}`);
        }
        throw error;
      }
      this.spool?.succeeded();
      const reply = DomainsListReplySchema.parse(JSON.parse(content.toString('utf8')));
      const first = this.domains === undefined;
      this.policies = new Map(
        Object.entries(reply.policies).map(([domain, policy]) => [domain, compilePolicy(policy)]),
      );
      this.domains = new Set(reply.approved);
      this.suspended = new Set(reply.suspended);
      if (first) {
        this.logger.info({ domains: this.domains.size }, 'approved domains loaded');
      }
    } catch (error) {
      this.logger.warn({ err: error }, 'loading the approved domains failed');
      nextInMs = this.domains === undefined ? RETRY_MS : Math.min(this.refreshMs, 5 * RETRY_MS);
    }
    if (!this.stopped) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.reload(), nextInMs);
    }
  }
}
