/** The OpenAPI document (from the route schemas) and swagger-ui at /docs, both without a token. */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import packageJson from '../package.json' with { type: 'json' };

export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'secondary-mx admin API',
        version: packageJson.version,
        description:
          'Member domains and their approval, the next-hop override, the spool, queue actions, ' +
          'statistics and flushes. ' +
          'Every /api route requires `Authorization: Bearer <MX_ADMIN_TOKEN>`.',
      },
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description: 'the value of MX_ADMIN_TOKEN',
          },
        },
      },
      security: [{ bearerAuth: [] }],
      tags: [
        { name: 'domains', description: 'member domains' },
        { name: 'messages', description: 'the spool' },
        { name: 'operations', description: 'health and metrics, without a token' },
      ],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
}
