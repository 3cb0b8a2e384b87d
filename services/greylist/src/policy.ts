/**
 * The greylist policy for one recipient: the static whitelists first, then the client group
 * (SPF, forward-confirmed name or network) and the triplet in Redis.
 */
import type {
  GreylistCheckReply,
  GreylistCheckRequest,
  GreylistTripletState,
} from '@secondary-mx/contracts';
import type { Logger } from '@secondary-mx/logger';
import type { Greylist } from './greylist.ts';
import type { SpfCheck, SpfOutcome, SpfRequest } from './spf.ts';
import type { WhitelistMatcher } from './static-whitelist.ts';

/** The fields of a check request that decide the verdict. */
export type TripletRequest = Omit<GreylistCheckRequest, 'session'>;

export class GreylistPolicy {
  constructor(
    private readonly greylist: Greylist,
    private readonly whitelist: WhitelistMatcher,
    private readonly spfCheck: SpfCheck,
  ) {}

  /**
   * Returns the verdict for one recipient. Throws InvalidAddressError for a client address that
   * is not an IP, and the Redis error when Redis fails. A failed SPF check is logged and counts
   * as no pass.
   */
  async check(request: GreylistCheckRequest, log: Logger): Promise<GreylistCheckReply> {
    const whitelisted = this.whitelist.matchEntry(request);
    if (whitelisted !== undefined) {
      return { action: 'pass', reason: whitelisted.reason };
    }

    const spf = await this.checkSpf(request, log);
    return this.greylist.check({
      clientAddress: request.clientAddress,
      clientName: request.clientName,
      spfDomain: spf.groupDomain,
      sender: request.sender,
      recipient: request.recipient,
    });
  }

  /**
   * Returns the state of the request's triplet as check() would judge it now, without recording
   * an attempt. The key fields are computed even for a whitelisted request. Throws as check().
   */
  async lookup(request: TripletRequest, log: Logger): Promise<GreylistTripletState> {
    const spf = await this.checkSpf(request, log);
    const record = await this.greylist.lookup({
      clientAddress: request.clientAddress,
      clientName: request.clientName,
      spfDomain: spf.groupDomain,
      sender: request.sender,
      recipient: request.recipient,
    });
    const state: GreylistTripletState = {
      state: record.state === 'auto-whitelisted' ? 'whitelisted' : record.state,
      firstSeen: isoTime(record.firstSeen),
      passAfter: isoTime(record.passAfter),
      lastPassed: isoTime(record.lastPassed),
      expiresAt: isoTime(record.expiresAt),
      clientGroup: record.clientGroup,
      sender: record.sender,
      recipient: record.recipient,
      spf: spf.result,
      key: record.key,
      groupKey: record.groupKey,
      groupPasses: record.groupPasses,
      autoWhitelistAfter: record.autoWhitelistAfter,
    };
    if (record.state === 'auto-whitelisted') {
      state.reason = 'auto-whitelisted';
    }

    // A static whitelist entry passes before the records are read, as in check().
    const whitelisted = this.whitelist.matchEntry(request);
    if (whitelisted !== undefined) {
      return {
        ...state,
        state: 'whitelisted',
        reason: whitelisted.reason,
        whitelistEntry: whitelisted.entry,
      };
    }
    return state;
  }

  private async checkSpf(request: SpfRequest, log: Logger): Promise<SpfOutcome> {
    try {
      const spf = await this.spfCheck(request);
      log.debug(
        { sender: request.sender, spf: spf.result, spfGroup: spf.groupDomain },
        'SPF checked',
      );
      return spf;
    } catch (error) {
      log.warn({ err: error, sender: request.sender }, 'SPF check failed, grouping without it');
      return { result: 'temperror', groupDomain: undefined };
    }
  }
}

function isoTime(epochMs: number | undefined): string | undefined {
  return epochMs === undefined ? undefined : new Date(epochMs).toISOString();
}
