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
          'statistics and flushes, greylist lookups and the greylist whitelist. ' +
          'Every /api route requires `Authorization: Bearer <token>`: MX_ADMIN_TOKEN or a stored ' +
          'admin token for everything, or a member token for its own domain only.',
      },
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description: 'MX_ADMIN_TOKEN, or a token created with POST /api/tokens',
          },
        },
      },
      security: [{ bearerAuth: [] }],
      tags: [
        { name: 'domains', description: 'member domains' },
        { name: 'messages', description: 'the spool' },
        { name: 'tokens', description: 'stored admin and member tokens' },
        { name: 'greylist', description: 'greylist triplets and whitelist, for administrators' },
        { name: 'operations', description: 'health and metrics, without a token' },
      ],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
}
