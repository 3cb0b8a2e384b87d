/**
 * Names of the RabbitMQ queues and exchanges. A prefix (MX_AMQP_PREFIX) lets several
 * installations, or test runs, share one vhost.
 */
export const QUEUE = {
  /** RPC: ingress asks greylist for a verdict on one recipient. */
  greylistCheck: 'greylist.check',
  /** RPC: admin-api looks up a triplet in greylist, or lists or changes its whitelist. */
  greylistAdmin: 'greylist.admin',
  /** RPC: ingress hands a received message to queue-store, which replies once it is committed. */
  spoolStore: 'spool.store',
  /** RPC: ingress asks queue-store for the approved domains. */
  domainsList: 'domains.list',
  /** RPC: a delivery worker checks with the primary whether it accepts a recipient at RCPT. */
  recipientVerify: 'recipient.verify',
  /** Work queue: queue-store hands leased recipients to delivery workers. */
  deliveryJobs: 'delivery.jobs',
  /** Work queue: delivery workers report the outcome of each recipient back to queue-store. */
  deliveryResults: 'delivery.results',
} as const;

export const EXCHANGE = {
  /** Fanout of control events (domain changes, flush requests) to every replica. */
  control: 'control',
} as const;

export type QueueName = (typeof QUEUE)[keyof typeof QUEUE];

export function prefixed(prefix: string, name: string): string {
  return `${prefix}${name}`;
}
