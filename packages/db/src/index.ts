export {
  createPool,
  ensureDatabase,
  type Pool,
  type PoolClient,
  type Queryable,
  quoteIdentifier,
  withTransaction,
} from './connection.ts';
export * from './domain-recipients.ts';
export * from './domains.ts';
export { flushDomain } from './flush.ts';
export * from './messages.ts';
export { migrate } from './migrate.ts';
export * from './observe.ts';
export * from './probes.ts';
export * from './reports.ts';
export * from './results.ts';
export * from './schedule.ts';
export * from './spool.ts';
export * from './spool-stats.ts';
export * from './tokens.ts';
