import type { DomainsListReply } from '@secondary-mx/contracts';
import { approvedDomainPolicies, type Pool } from '@secondary-mx/db';

/**
 * Serves domains.list: the approved member domains, which ingress relays for, each with the
 * recipient check and greylist switch that ingress applies to it.
 */
export function createDomainsListHandler(pool: Pool) {
  return async (): Promise<Buffer> => {
    const policies = await approvedDomainPolicies(pool);
    const body: DomainsListReply = { approved: Object.keys(policies), policies };
    return Buffer.from(JSON.stringify(body));
  };
}
