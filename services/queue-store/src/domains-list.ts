import type { DomainsListReply } from '@secondary-mx/contracts';
import { approvedDomainPolicies, listDomainNames, type Pool } from '@secondary-mx/db';

/**
 * Serves domains.list: the approved member domains, which ingress relays for, each with the
 * recipient check and greylist switch that ingress applies to it, and the suspended domains,
 * whose recipients ingress rejects with a temporary error.
 */
export function createDomainsListHandler(pool: Pool) {
  return async (): Promise<Buffer> => {
    const [policies, suspended] = await Promise.all([
      approvedDomainPolicies(pool),
      listDomainNames(pool, 'suspended'),
    ]);
    const body: DomainsListReply = { approved: Object.keys(policies), suspended, policies };
    return Buffer.from(JSON.stringify(body));
  };
}
