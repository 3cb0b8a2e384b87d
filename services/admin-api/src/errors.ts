/**
 * Error replies of the API: every error body is `{statusCode, error, message}`, where `error` is
 * the HTTP reason phrase and `message` states what failed on which value.
 */
import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance, FastifySchemaValidationError } from 'fastify';
import { classifyDatabaseError } from './database-errors.ts';

export interface ErrorBody {
  statusCode: number;
  error: string;
  message: string;
}

export function errorBody(statusCode: number, message: string): ErrorBody {
  return { statusCode, error: STATUS_CODES[statusCode] ?? 'Error', message };
}

/**
 * Installs the handlers for thrown errors and unknown routes. Schema validation errors become
 * 400, an unreachable database or a missing schema becomes 503, and anything else is logged and
 * returned as 500.
 */
export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.validation) {
      return reply.code(400).send(errorBody(400, error.message));
    }

    const database = classifyDatabaseError(error);
    if (database) {
      request.log.warn({ err: error }, database.message);
      return reply.code(503).send(errorBody(503, database.message));
    }

    const statusCode = error.statusCode ?? 500;
    if (statusCode >= 400 && statusCode < 500) {
      return reply.code(statusCode).send(errorBody(statusCode, error.message));
    }

    request.log.error({ err: error }, 'request failed');
    return reply
      .code(500)
      .send(errorBody(500, `internal error, see the admin-api log for request ${request.id}`));
  });

  app.setNotFoundHandler((request, reply) => {
    return reply.code(404).send(errorBody(404, `route ${request.method} ${request.url} not found`));
  });
}

/**
 * Builds the error of a failed schema validation, naming the field: `body/role must be equal to
 * one of the allowed values`, or `body/colour is not a known field` for an unlisted property.
 */
export function formatValidationErrors(
  errors: FastifySchemaValidationError[],
  dataVar: string,
): Error {
  const messages = errors.map((error) => {
    const path = `${dataVar}${error.instancePath}`;
    const unknownField = error.params.additionalProperty;
    if (error.keyword === 'additionalProperties' && typeof unknownField === 'string') {
      return `${path}/${unknownField} is not a known field`;
    }
    return `${path} ${error.message ?? 'is invalid'}`;
  });
  return new Error(messages.join(', '));
}

export function invalidDomainBody(value: string): ErrorBody {
  return errorBody(400, `domain ${JSON.stringify(value)} is not a valid domain name`);
}

export function unknownDomainBody(domain: string): ErrorBody {
  return errorBody(404, `domain ${domain} is not registered`);
}
