import type { DomainsListReply } from '@secondary-mx/contracts';
import { listApprovedDomainNames, type Pool } from '@secondary-mx/db';

/** Serves domains.list: the approved member domains, which ingress relays for. */
export function createDomainsListHandler(pool: Pool) {
  return async (): Promise<Buffer> => {
    const body: DomainsListReply = { approved: await listApprovedDomainNames(pool) };
    return Buffer.from(JSON.stringify(body));
  };
}
