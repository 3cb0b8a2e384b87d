/**
 * Test fixtures: a fresh PostgreSQL database per test file, a RabbitMQ prefix of its own, the
 * app built on them, and a second broker that records the control events it receives.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Broker } from '@secondary-mx/amqp';
import { loadSettings } from '@secondary-mx/config';
import {
  type ControlEvent,
  ControlEventSchema,
  EXCHANGE,
  newQueueId,
} from '@secondary-mx/contracts';
import { createPool, ensureDatabase, insertMessage, migrate, type Pool } from '@secondary-mx/db';
import { createLogger } from '@secondary-mx/logger';
import { LOCAL_AMQP_URL, type TestDatabase, testDatabase, uniqueName } from '@secondary-mx/testkit';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/app.ts';
import { ROUTE_SETTINGS } from '../src/settings.ts';

export const TOKEN = 'admin-token-for-tests-0123456789';
export const AUTH = { authorization: `Bearer ${TOKEN}` };

export const logger = createLogger('admin-api-test', process.env.TEST_LOG_LEVEL ?? 'silent');

/** Returns a domain name no other test uses, such as `approve-1a2b3c4d.example`. */
export function testDomain(label: string): string {
  return `${label}-${randomBytes(4).toString('hex')}.example`;
}

export interface Harness {
  app: FastifyInstance;
  pool: Pool;
  broker: Broker;
  database: TestDatabase;
  amqpPrefix: string;
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** Apply the migrations, as queue-store does on start; default true. */
  migrate?: boolean;
  /** Overrides the database, for example to point at a port where nothing listens. */
  databaseUrl?: string;
  /** Overrides RabbitMQ; the broker is then not awaited, since it may never connect. */
  amqpUrl?: string;
  /** Settings of the routes as environment variables, over the test defaults. */
  env?: Record<string, string>;
}

/** MX_HOSTNAME of the harness, which is also its name in MX records. */
export const HOSTNAME = 'mx2.example.net';

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const database = testDatabase('smx_admin');
  const databaseUrl = options.databaseUrl ?? database.url;
  if (options.databaseUrl === undefined) {
    await ensureDatabase(database.url, logger);
  }
  if (options.databaseUrl === undefined && options.migrate !== false) {
    await migrate(database.url, logger);
  }
  const pool = createPool(databaseUrl, logger);

  const amqpPrefix = `${uniqueName('admin')}.`;
  const broker = new Broker({
    url: options.amqpUrl ?? LOCAL_AMQP_URL,
    prefix: amqpPrefix,
    logger,
    connectionName: 'admin-api-test',
  });
  const started = broker.start();
  if (options.amqpUrl === undefined) {
    await started;
  }

  const settings = loadSettings(ROUTE_SETTINGS, {
    MX_HOSTNAME: HOSTNAME,
    // Nothing answers on port 9, so a test that starts no DNS server gets fast failures
    // instead of queries to the machine's resolver.
    DNS_SERVERS: '127.0.0.1:9',
    ...options.env,
  });
  const app = await buildApp({ pool, broker, token: TOKEN, logger, settings });
  await app.ready();

  return {
    app,
    pool,
    broker,
    database,
    amqpPrefix,
    async close() {
      await app.close();
      await broker.stop();
      await pool.end();
      if (options.databaseUrl === undefined) {
        await database.drop();
      }
    },
  };
}

export interface EventRecorder {
  events: ControlEvent[];
  /** Resolves with the first recorded event that matches, or rejects after timeoutMs. */
  waitFor(predicate: (event: ControlEvent) => boolean, timeoutMs?: number): Promise<ControlEvent>;
  stop(): Promise<void>;
}

/** Subscribes a second broker to the control exchange of the given prefix. */
export async function recordControlEvents(amqpPrefix: string): Promise<EventRecorder> {
  const events: ControlEvent[] = [];
  const broker = new Broker({
    url: LOCAL_AMQP_URL,
    prefix: amqpPrefix,
    logger,
    connectionName: 'admin-api-test-subscriber',
  });
  broker.subscribe(EXCHANGE.control, (content) => {
    events.push(ControlEventSchema.parse(JSON.parse(content.toString('utf8'))));
  });
  await broker.start();

  return {
    events,
    async waitFor(predicate, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const found = events.find(predicate);
        if (found) {
          return found;
        }
        await sleep(20);
      }
      throw new Error(
        `no matching control event within ${timeoutMs} ms; got ${JSON.stringify(events)}`,
      );
    },
    stop: () => broker.stop(),
  };
}

export interface StoredMessageOptions {
  /** Defaults to `sender@origin.example`; the empty string is the null sender. */
  sender?: string;
  /** Defaults to now; the queue id is made for this time, as ingress does. */
  receivedAt?: Date;
}

/** Stores a message with one recipient per address, each under the domain after its `@`. */
export async function storeMessage(
  pool: Pool,
  addresses: string[],
  options: StoredMessageOptions = {},
): Promise<string> {
  const receivedAt = options.receivedAt ?? new Date();
  const queueId = newQueueId(receivedAt.getTime());
  await insertMessage(pool, {
    queueId,
    sender: options.sender ?? 'sender@origin.example',
    recipients: addresses.map((address) => ({
      envelope: { address },
      domain: address.slice(address.lastIndexOf('@') + 1),
    })),
    body: Buffer.from('Subject: test\r\n\r\nbody\r\n'),
    bodyType: '7BIT',
    smtpUtf8: false,
    clientAddress: '127.0.0.1',
    receivedAt,
    expiresAt: new Date(receivedAt.getTime() + 35 * 86_400_000),
  });
  return queueId;
}

/** Registers a domain through the API and returns its normalized name. */
export async function registerDomain(app: FastifyInstance, domain: string): Promise<string> {
  const response = await app.inject({
    method: 'POST',
    url: '/api/domains',
    headers: AUTH,
    payload: { domain, memberNumber: 'M-1' },
  });
  if (response.statusCode !== 201) {
    throw new Error(`registering ${domain} failed: ${response.statusCode} ${response.body}`);
  }
  return response.json<{ domain: string }>().domain;
}

/** Creates a stored token through the API and returns its Authorization header. */
export async function createTokenHeader(
  app: FastifyInstance,
  role: 'admin' | 'member',
  domain?: string,
): Promise<{ authorization: string }> {
  const response = await app.inject({
    method: 'POST',
    url: '/api/tokens',
    headers: AUTH,
    payload: domain === undefined ? { role } : { role, domain },
  });
  if (response.statusCode !== 201) {
    throw new Error(`creating a ${role} token failed: ${response.statusCode} ${response.body}`);
  }
  return { authorization: `Bearer ${response.json<{ token: string }>().token}` };
}

export interface RouteRequest {
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  url: string;
  payload?: object;
}

/** Status codes expected for one route with each kind of caller. */
export interface AccessExpectation {
  admin: number;
  /** A member token of the domain the route is about. */
  member: number;
  /** A member token of another domain. */
  otherMember: number;
}

export interface Callers {
  admin: { authorization: string };
  member: { authorization: string };
  otherMember: { authorization: string };
}

/**
 * Creates member tokens of the domain and of another domain. The admin caller is the given
 * header, or a new stored admin token.
 */
export async function createCallers(
  app: FastifyInstance,
  domain: string,
  otherDomain: string,
  admin?: { authorization: string },
): Promise<Callers> {
  return {
    admin: admin ?? (await createTokenHeader(app, 'admin')),
    member: await createTokenHeader(app, 'member', domain),
    otherMember: await createTokenHeader(app, 'member', otherDomain),
  };
}

/**
 * Sends the request with no token (expecting 401) and with each caller's token, and asserts
 * the status codes. The admin request goes last, so a route that changes state is checked
 * before the change.
 */
export async function assertAccess(
  app: FastifyInstance,
  request: RouteRequest | (() => RouteRequest),
  expected: AccessExpectation,
  callers: Callers,
): Promise<void> {
  const build = typeof request === 'function' ? request : () => request;
  const label = `${build().method} ${build().url}`;
  const anonymous = await app.inject(build());
  if (anonymous.statusCode !== 401) {
    throw new Error(`${label} without a token: ${anonymous.statusCode}, expected 401`);
  }
  for (const caller of ['otherMember', 'member', 'admin'] as const) {
    const response = await app.inject({ ...build(), headers: callers[caller] });
    if (response.statusCode !== expected[caller]) {
      throw new Error(
        `${label} as ${caller}: ${response.statusCode} ${response.body}, expected ${expected[caller]}`,
      );
    }
  }
}
