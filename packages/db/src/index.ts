export {
  createPool,
  ensureDatabase,
  type Pool,
  type PoolClient,
  type Queryable,
  quoteIdentifier,
  withTransaction,
} from './connection.ts';
export * from './domain-lifecycle.ts';
export * from './domain-recipients.ts';
export * from './domains.ts';
export { flushDomain } from './flush.ts';
export * from './messages.ts';
export { migrate } from './migrate.ts';
export * from './observe.ts';
export * from './probes.ts';
export * from './queue-actions.ts';
export * from './queue-stats.ts';
export * from './reports.ts';
export * from './results.ts';
export * from './schedule.ts';
export * from './spool.ts';
export type { AddressMatch, SpoolFilter } from './spool-filter.ts';
export * from './spool-stats.ts';
export * from './tokens.ts';
