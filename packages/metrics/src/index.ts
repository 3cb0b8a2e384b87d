export { type BackendMetricsOptions, registerBackendMetrics } from './backend.ts';
export {
  type HealthCheck,
  type HealthChecks,
  type HealthReport,
  runHealthChecks,
} from './health.ts';
export { type MetricsServer, startMetricsServer } from './server.ts';
