/** GET /api/domains/:domain/dns-check: the domain's MX records and primary, checked now. */
import { normalizeDomain } from '@secondary-mx/address';
import { getDomain, type Pool } from '@secondary-mx/db';
import { DnsLookup } from '@secondary-mx/dns';
import type { FastifyInstance } from 'fastify';
import { canAccessDomain } from '../auth.ts';
import { DnsChecker } from '../dns-check.ts';
import { invalidDomainBody, unknownDomainBody } from '../errors.ts';
import { DomainParamsSchema, errorResponses } from '../schemas.ts';
import type { RouteSettings } from '../settings.ts';

const DnsCheckResponseSchema = {
  type: 'object',
  required: [
    'domain',
    'mxLookup',
    'listed',
    'ourPreference',
    'primary',
    'records',
    'preferenceOk',
    'ok',
    'problems',
    'summary',
  ],
  properties: {
    domain: { type: 'string' },
    mxLookup: {
      type: 'string',
      enum: ['ok', 'nxdomain', 'nodata', 'null-mx', 'failed'],
      description:
        '`nxdomain`: the domain does not exist; `nodata`: it has no MX records; `null-mx`: ' +
        'only a null MX (`MX 0 .`); `failed`: SERVFAIL, timeout or another DNS error',
    },
    mxError: { type: 'string', description: 'the DNS error code when mxLookup is `failed`' },
    listed: { type: 'boolean', description: 'whether MX_SELF_NAMES or MX_HOSTNAME is listed' },
    ourPreference: { type: ['integer', 'null'] },
    primary: {
      type: ['object', 'null'],
      description:
        'the primaryHosts override when set, else the MX host with the lowest preference other ' +
        'than us; null when there is none',
      required: ['host', 'port', 'preference', 'source', 'smtp'],
      properties: {
        host: { type: 'string' },
        port: { type: 'integer' },
        preference: { type: ['integer', 'null'] },
        source: { type: 'string', enum: ['mx', 'primaryHosts'] },
        smtp: {
          type: 'string',
          enum: ['answers', 'no answer', 'rejects', 'no address', 'loops back'],
          description:
            '`answers`: 2xx greeting and EHLO reply; `rejects`: another reply; `no answer`: no ' +
            'connection or no reply within MX_SMTP_CHECK_TIMEOUT; `no address`: no A or AAAA ' +
            'record; `loops back`: it greets with one of our own names',
        },
        reply: { type: 'string', description: 'the greeting, or what went wrong' },
        address: {
          type: 'string',
          description: 'the address of the successful session, else the last one tried',
        },
      },
    },
    records: {
      type: 'array',
      items: {
        type: 'object',
        required: ['host', 'preference'],
        properties: {
          host: { type: 'string', description: '`.` for a null MX' },
          preference: { type: 'integer' },
        },
      },
    },
    preferenceOk: {
      type: 'boolean',
      description: "whether our preference is larger than every other MX host's",
    },
    ok: { type: 'boolean', description: 'true when problems is empty' },
    problems: {
      type: 'array',
      items: { type: 'string' },
      description: 'each problem in one sentence with what to change',
    },
    summary: { type: 'string', description: 'the outcome in one sentence' },
  },
} as const;

export function dnsCheckRoutes(
  app: FastifyInstance,
  deps: { pool: Pool; settings: RouteSettings },
): void {
  const { pool, settings } = deps;
  const checker = new DnsChecker({
    // Without a cache every check gets the records as they are now.
    dns: new DnsLookup({
      servers: settings.DNS_SERVERS,
      cacheTtlMs: 0,
      timeoutMs: settings.MX_DNS_TIMEOUT,
      tries: 1,
    }),
    selfNames: new Set([settings.MX_HOSTNAME, ...settings.MX_SELF_NAMES]),
    hostname: settings.MX_HOSTNAME,
    deliveryPort: settings.MX_DELIVERY_PORT,
    smtpTimeoutMs: settings.MX_SMTP_CHECK_TIMEOUT,
  });

  app.get<{ Params: { domain: string } }>(
    '/domains/:domain/dns-check',
    {
      schema: {
        summary: "Check the domain's MX records and its primary now",
        description:
          'Looks up the MX records through DNS_SERVERS and tries an SMTP session (greeting, ' +
          'EHLO, QUIT, no mail) with the primary: the primaryHosts override when set, else the ' +
          'MX hosts with the lowest preference other than us. It takes up to MX_DNS_TIMEOUT per ' +
          'lookup and MX_SMTP_CHECK_TIMEOUT per address tried.',
        tags: ['domains'],
        params: DomainParamsSchema,
        response: { 200: DnsCheckResponseSchema, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request, reply) => {
      const domain = normalizeDomain(request.params.domain);
      if (!domain) {
        return reply.code(400).send(invalidDomainBody(request.params.domain));
      }
      const row = canAccessDomain(request, domain) ? await getDomain(pool, domain) : undefined;
      if (!row) {
        return reply.code(404).send(unknownDomainBody(domain));
      }

      const report = await checker.check(domain, row.primaryHosts);
      request.log.info(
        { domain, ok: report.ok, mxLookup: report.mxLookup, smtp: report.primary?.smtp ?? null },
        'DNS check done',
      );
      return reply.send(report);
    },
  );
}
