/**
 * Runs queue-store and ingress in the test process on a database of their own, with
 * member.example and no-greylist.example (greylisting off) approved, for tests that need
 * ingress settings of their own.
 */
import { loadSettings } from '@secondary-mx/config';
import { createLogger } from '@secondary-mx/logger';
import {
  freePort,
  SmtpClient,
  startDnsServer,
  type TestDnsServer,
  testEnvironment,
} from '@secondary-mx/testkit';
import pg from 'pg';
import { startQueueStore } from '../../queue-store/src/service.ts';
import { QUEUE_STORE_SETTINGS } from '../../queue-store/src/settings.ts';
import { startIngress } from '../src/service.ts';
import { INGRESS_SETTINGS } from '../src/settings.ts';

export interface IngressUnderTest {
  port: number;
  dns: TestDnsServer;
  database: pg.Client;
  countMessages(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Starts the pair with the given ingress settings on top of the defaults of these tests. The
 * DNS server answers for sender.example, so `MAIL FROM:<alice@sender.example>` passes.
 */
export async function startIngressUnderTest(
  label: string,
  env: Record<string, string>,
): Promise<IngressUnderTest> {
  const environment = testEnvironment(label);
  const logger = createLogger('test', process.env.TEST_LOG_LEVEL ?? 'silent');
  const port = await freePort();
  const dns = await startDnsServer({
    'sender.example': { MX: [{ preference: 10, exchange: 'mx.sender.example' }] },
  });
  const settings = {
    ...environment.env,
    MX_HOSTNAME: 'mx2.example.net',
    MX_SMTP_LISTEN: `127.0.0.1:${port}`,
    MX_SPOOL_TIMEOUT: '3s',
    MX_GREYLIST_TIMEOUT: '200ms',
    MX_SCHEDULER_INTERVAL: '60s',
    DNS_SERVERS: dns.server,
    ...env,
  };

  const queueStore = await startQueueStore(loadSettings(QUEUE_STORE_SETTINGS, settings), logger);
  const database = new pg.Client({ connectionString: environment.database.url });
  await database.connect();
  await database.query(
    `INSERT INTO domains (name, member_number, state, greylist) VALUES
       ('member.example', '1001', 'approved', true),
       ('no-greylist.example', '1002', 'approved', false)`,
  );
  const ingress = await startIngress(loadSettings(INGRESS_SETTINGS, settings), logger);

  // Ingress answers 451 until it has loaded the approved domains from queue-store.
  for (let i = 0; i < 100; i++) {
    const { client } = await SmtpClient.connect(port);
    await client.command('EHLO client.example');
    await client.command('MAIL FROM:<>');
    const reply = await client.command('RCPT TO:<probe@member.example>');
    client.close();
    await client.closed();
    if (reply.code === 250) {
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  return {
    port,
    dns,
    database,
    async countMessages() {
      const result = await database.query<{ count: string }>('SELECT count(*) FROM messages');
      return Number(result.rows[0]?.count);
    },
    async stop() {
      await ingress.stop();
      await queueStore.stop();
      await database.end();
      await dns.close();
      await environment.database.drop();
    },
  };
}
