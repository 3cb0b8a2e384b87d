/**
 * The admin API as a fastify instance, without listening, so tests can use inject() or listen on
 * a port of their own. Routes under /api require a bearer token (auth.ts), but /health, /metrics
 * and /docs do not.
 */
import type { Broker } from '@secondary-mx/amqp';
import type { Pool } from '@secondary-mx/db';
import type { Logger } from '@secondary-mx/logger';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { bearerAuth } from './auth.ts';
import { formatValidationErrors, installErrorHandlers } from './errors.ts';
import { rejectNulCharacters } from './nul-characters.ts';
import { registerOpenApi } from './openapi.ts';
import { dnsCheckRoutes } from './routes/dns-check.ts';
import { domainRoutes } from './routes/domains.ts';
import { flushRoutes } from './routes/flush.ts';
import { greylistRoutes } from './routes/greylist.ts';
import { healthRoutes } from './routes/health.ts';
import { lifecycleRoutes } from './routes/lifecycle.ts';
import { messageRoutes } from './routes/messages.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { queueActionRoutes } from './routes/queue-actions.ts';
import { recipientRoutes } from './routes/recipients.ts';
import { statsRoutes } from './routes/stats.ts';
import { tokenRoutes } from './routes/tokens.ts';
import type { RouteSettings } from './settings.ts';

export interface AppOptions {
  pool: Pool;
  broker: Broker;
  /** The bearer token of the administrators (MX_ADMIN_TOKEN). */
  token: string;
  logger: Logger;
  settings: RouteSettings;
}

/**
 * Log paths that may carry the token or a password, redacted here whatever logger is passed in.
 * A pino child's redaction replaces its parent's (pino 10, child() in lib/proto.js), so the list
 * repeats the shared logger's paths.
 */
const REDACTED_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  '*.authorization',
  'token',
  '*.token',
  'password',
  '*.password',
];

/** Accepts an empty body with `Content-Type: application/json`, as some clients send on POST. */
function allowEmptyJsonBody(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body.toString();
    if (text === '') {
      done(null, undefined);
      return;
    }
    parseJson(request, text, done);
  });
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { pool, broker, token, settings } = options;
  const logger = options.logger.child(
    {},
    { redact: { paths: REDACTED_PATHS, censor: '[redacted]' } },
  );
  // Typed as fastify's base logger, so route modules take a plain FastifyInstance.
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // Fastify's default, 'array', also wraps a scalar into an array and unwraps a one-element
    // array, so `"primaryHosts": "mx"` would pass. Only scalars are converted here. Fastify
    // also removes properties that a schema with additionalProperties: false does not list;
    // with removeAdditional off they are rejected with a 400 that names them.
    ajv: { customOptions: { coerceTypes: true, removeAdditional: false } },
    schemaErrorFormatter: formatValidationErrors,
  });

  installErrorHandlers(app);
  allowEmptyJsonBody(app);
  await registerOpenApi(app);

  healthRoutes(app, { pool, broker });
  metricsRoutes(app, { pool, broker });
  await app.register(
    async (api) => {
      // Set by bearerAuth on every request that passes it.
      api.decorateRequest('principal', null as never);
      api.addHook('onRequest', bearerAuth(token, pool));
      api.addHook('preValidation', rejectNulCharacters);
      domainRoutes(api, { pool, broker, settings });
      lifecycleRoutes(api, { pool, broker, settings });
      dnsCheckRoutes(api, { pool, settings });
      recipientRoutes(api, { pool, broker });
      flushRoutes(api, { pool, broker });
      messageRoutes(api, { pool });
      queueActionRoutes(api, { pool, broker });
      statsRoutes(api, { pool });
      tokenRoutes(api, { pool });
      greylistRoutes(api, { broker });
    },
    { prefix: '/api' },
  );

  return app;
}
