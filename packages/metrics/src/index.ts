export { type MetricsServer, startMetricsServer } from './server.ts';
