/**
 * The greylist policy for one recipient: the static whitelists first, then the client group
 * (SPF, forward-confirmed name or network) and the triplet in Redis.
 */
import type { GreylistCheckReply, GreylistCheckRequest } from '@secondary-mx/contracts';
import type { Logger } from '@secondary-mx/logger';
import type { Greylist } from './greylist.ts';
import type { SpfCheck } from './spf.ts';
import type { StaticWhitelist } from './static-whitelist.ts';

export class GreylistPolicy {
  constructor(
    private readonly greylist: Greylist,
    private readonly whitelist: StaticWhitelist,
    private readonly spfCheck: SpfCheck,
  ) {}

  /**
   * Returns the verdict for one recipient. Throws InvalidAddressError for a client address that
   * is not an IP, and the Redis error when Redis fails. A failed SPF check is logged and counts
   * as no pass.
   */
  async check(request: GreylistCheckRequest, log: Logger): Promise<GreylistCheckReply> {
    const whitelisted = this.whitelist.match(request);
    if (whitelisted !== undefined) {
      return { action: 'pass', reason: whitelisted };
    }

    let spfDomain: string | undefined;
    try {
      const spf = await this.spfCheck(request);
      log.debug(
        { sender: request.sender, spf: spf.result, spfGroup: spf.groupDomain },
        'SPF checked',
      );
      spfDomain = spf.groupDomain;
    } catch (error) {
      log.warn({ err: error, sender: request.sender }, 'SPF check failed, grouping without it');
    }
    return this.greylist.check({
      clientAddress: request.clientAddress,
      clientName: request.clientName,
      spfDomain,
      sender: request.sender,
      recipient: request.recipient,
    });
  }
}
