/**
 * Starts the whole suite as separate processes on this run's isolated database, queue prefix
 * and Redis prefix, with its own SMTP and admin ports, for end-to-end tests.
 */
import { deleteBrokerObjects } from './broker-cleanup.ts';
import { freePort, type TestEnvironment, testEnvironment } from './environment.ts';
import { type ServiceName, type ServiceProcess, startService } from './services.ts';
import { SmtpClient } from './smtp-client.ts';

export interface SuiteOptions {
  /** Extra settings for every service, such as short durations or DNS_SERVERS. */
  env?: Record<string, string>;
  /** Defaults to all five; `delivery-worker` may appear more than once. */
  services?: ServiceName[];
  /** Settings for one service only, on top of `env`, such as a URL through a TCP proxy. */
  serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
  /** The isolated database and prefixes to use; a new one by default. */
  environment?: TestEnvironment;
}

export interface Suite {
  environment: TestEnvironment;
  env: Record<string, string>;
  smtpPort: number;
  adminUrl: string;
  adminToken: string;
  processes: ServiceProcess[];
  /** Calls the admin API with the administrator token; returns the status and parsed body. */
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the route returns.
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** Resolves once ingress accepts RCPT for the domain (250, or 451 while greylisted). */
  waitUntilRelayed(domain: string, timeoutMs?: number): Promise<void>;
  /** Starts one more process of a service with the suite's settings and adds it to processes. */
  start(name: ServiceName): ServiceProcess;
  /** Stops every process with SIGTERM, then drops the database and the broker queues. */
  stop(): Promise<void>;
  /** Every process's recent output, for a failing test's message. */
  logs(): string;
}

/** The log line each service writes once it serves, for a test that starts one by itself. */
export const READY_LINES: Record<ServiceName, RegExp> = {
  'queue-store': /"msg":"queue-store started"/,
  greylist: /"msg":"[^"]*(started|listening|serving)[^"]*"/i,
  'delivery-worker': /"msg":"[^"]*(started|consuming)[^"]*"/i,
  ingress: /"msg":"ingress listening"/,
  'admin-api': /"msg":"[^"]*(listening|started)[^"]*"/i,
};

export async function startSuite(options: SuiteOptions = {}): Promise<Suite> {
  const environment = options.environment ?? testEnvironment('e2e');
  const smtpPort = await freePort();
  const adminPort = await freePort();
  const adminToken = 'test-admin-token-0123456789';
  const env: Record<string, string> = {
    ...environment.env,
    MX_HOSTNAME: 'mx2.example.net',
    MX_SMTP_LISTEN: `127.0.0.1:${smtpPort}`,
    MX_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
    MX_ADMIN_TOKEN: adminToken,
    MX_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'info',
    ...options.env,
  };
  const names = options.services ?? [
    'queue-store',
    'greylist',
    'delivery-worker',
    'ingress',
    'admin-api',
  ];
  const processes: ServiceProcess[] = [];
  const adminUrl = `http://127.0.0.1:${adminPort}`;

  const suite: Suite = {
    environment,
    env,
    smtpPort,
    adminUrl,
    adminToken,
    processes,
    async api(method, path, body) {
      const response = await fetch(`${adminUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${adminToken}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : undefined };
    },
    async waitUntilRelayed(domain, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const { client } = await SmtpClient.connect(smtpPort);
        await client.command('EHLO relay-check.example');
        // The null sender needs no DNS answer for the sender domain check.
        await client.command('MAIL FROM:<>');
        const reply = await client.command(`RCPT TO:<relay-check@${domain}>`);
        client.close();
        if (reply.code === 250 || reply.code === 451) {
          return;
        }
        if (Date.now() > deadline) {
          throw new Error(
            `ingress still answers ${reply.text} for ${domain} after ${timeoutMs} ms`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    start(name) {
      const child = startService(name, { ...env, ...options.serviceEnv?.[name] });
      processes.push(child);
      return child;
    },
    async stop() {
      await Promise.all(processes.map((child) => child.stop()));
      await environment.database.drop();
      await deleteBrokerObjects(environment.amqpPrefix);
    },
    logs() {
      return processes.map((child) => `--- ${child.name}\n${child.tail(30)}`).join('\n');
    },
  };

  // queue-store first: it creates the database and runs the migrations the others rely on.
  try {
    const queueStore = names.includes('queue-store') ? suite.start('queue-store') : undefined;
    await queueStore?.waitForLog(READY_LINES['queue-store'], 30_000);
    for (const name of names.filter((service) => service !== 'queue-store')) {
      suite.start(name);
    }
    await Promise.all(processes.map((child) => child.waitForLog(READY_LINES[child.name], 30_000)));
  } catch (error) {
    await suite.stop();
    throw error;
  }
  return suite;
}
