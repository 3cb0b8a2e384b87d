/**
 * Removal of a member domain with what still waits for it. The check of the undelivered
 * recipients, their bounce or deletion, the domain event and the deletion of the domain row
 * happen in one transaction. queue-store sends the DSNs of bounced recipients afterwards, as
 * for bounces through the queue API.
 */
import {
  bounceUndelivered,
  completeFinalMessages,
  countUndelivered,
  deleteDomain,
  deleteUndelivered,
  insertDomainEvent,
  lockDomain,
  type Pool,
  withTransaction,
} from '@secondary-mx/db';

/** Enhanced status code (RFC 3463 "other undefined status") of recipients bounced by removal. */
export const REMOVAL_ENHANCED_CODE = '5.0.0';

export interface RemovalOptions {
  /** Choice for undelivered recipients, where `refuse` keeps the domain while there are any. */
  waiting: 'refuse' | 'bounce' | 'drop';
  actor: string;
  reason: string | null;
}

export type RemovalResult =
  | { outcome: 'removed'; bounced: number; dropped: number }
  | { outcome: 'not-found' }
  | { outcome: 'mail-waiting'; waiting: number };

/** Returns the reply recorded for recipients failed by the removal, as their DSN quotes it. */
export function removalReply(domain: string): string {
  return `554 ${REMOVAL_ENHANCED_CODE} ${domain} was removed from this backup MX by its administrator, so the message was not delivered`;
}

/**
 * Removes the domain, unless recipients are not final yet and `waiting` is `refuse`. A
 * recipient in a delivery attempt counts as not final, and with `bounce` it fails when the
 * attempt ends unless that attempt delivers it.
 */
export async function removeDomain(
  pool: Pool,
  domain: string,
  options: RemovalOptions,
): Promise<RemovalResult> {
  return withTransaction(pool, async (client) => {
    const row = await lockDomain(client, domain);
    if (!row) {
      return { outcome: 'not-found' };
    }
    // NOTE: the domain row lock does not stop ingress from spooling mail for the domain until
    // it reloads its domains, about a second after the change event. Such mail waits without
    // a domain row and is delivered through the domain's MX records like any other.
    const counts = await countUndelivered(client, domain);
    const undelivered = counts.waiting + counts.active;
    if (undelivered > 0 && options.waiting === 'refuse') {
      return { outcome: 'mail-waiting', waiting: undelivered };
    }

    let bounced = 0;
    let dropped = 0;
    if (undelivered > 0 && options.waiting === 'bounce') {
      const result = await bounceUndelivered(
        client,
        domain,
        removalReply(domain),
        REMOVAL_ENHANCED_CODE,
      );
      bounced = result.failed + result.pending;
    } else if (undelivered > 0 && options.waiting === 'drop') {
      const deleted = await deleteUndelivered(client, domain);
      dropped = deleted.recipients;
      await completeFinalMessages(client, deleted.queueIds);
    }

    await insertDomainEvent(client, {
      domain,
      actor: options.actor,
      action: 'remove',
      fromState: row.state,
      toState: 'removed',
      reason: options.reason,
      detail: describeRemoval(bounced, dropped),
    });
    await deleteDomain(client, domain);
    return { outcome: 'removed', bounced, dropped };
  });
}

function describeRemoval(bounced: number, dropped: number): string {
  if (bounced > 0) {
    return `bounced ${bounced} undelivered recipients with ${REMOVAL_ENHANCED_CODE}`;
  }
  if (dropped > 0) {
    return `dropped ${dropped} undelivered recipients without a DSN`;
  }
  return 'no mail was waiting';
}
