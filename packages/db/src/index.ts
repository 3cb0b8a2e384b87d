export {
  createPool,
  ensureDatabase,
  type Pool,
  type PoolClient,
  quoteIdentifier,
} from './connection.ts';
export * from './domains.ts';
export { flushDomain } from './flush.ts';
export * from './messages.ts';
export { migrate } from './migrate.ts';
export * from './results.ts';
export * from './schedule.ts';
export * from './spool.ts';
