/**
 * The whole system for fault scenarios: every service as its own child process that a scenario
 * can kill, stop and start again, a fake primary that counts each message it accepts by the
 * load's token, and a test DNS server. Settings are short (leases, retries, probes) so that
 * mail stranded by a fault is retried within seconds.
 */
import {
  FakePrimary,
  READY_LINES,
  type ServiceName,
  type ServiceProcess,
  type Suite,
  startService,
  startSuite,
  TestDnsServer,
} from '@secondary-mx/testkit';
import pg from 'pg';
import { LoadSender, readToken } from './load-sender.ts';

export const MEMBER_DOMAIN = 'member.example';
export const SENDER = 'load@faults.example';
/** Recipients of the load, one per message in turn. */
export const RECIPIENTS = Array.from({ length: 20 }, (_, index) => `user${index}@${MEMBER_DOMAIN}`);

/** Time the primary takes to accept each message, in milliseconds. */
const PRIMARY_DATA_DELAY_MS = 20;

/** States of a recipient that is still waiting for delivery. */
const WAITING_STATES = ['queued', 'deferred', 'active', 'hold'];

export interface ScenarioResult {
  name: string;
  sent: number;
  accepted: number;
  /** Tokens of this scenario that the primary accepted at least once. */
  delivered: number;
  /** Tokens that got 250 from ingress and never reached the primary. */
  lost: string[];
  /** Copies beyond the first that the primary accepted, summed over all tokens. */
  duplicated: number;
  /** Recipients still waiting when the scenario stopped waiting, by state. */
  waiting: Record<string, number>;
  /** Recipients that failed for good, which the primary should never cause here. */
  failed: number;
  /** Replies other than 250 the load got, and errors instead of replies, with counts. */
  failures: Record<string, number>;
  /** Warnings and errors the services logged during the scenario, with counts. */
  problems: Record<string, number>;
  line: string;
}

export interface ScenarioOptions {
  messages: number;
  sessions: number;
  /** Share of the messages accepted before the fault starts. */
  faultAt: number;
  /** Longest wait, after the load ended, for the spool to drain. */
  drainTimeoutMs: number;
  /** Injects the fault and resolves once it is over (the service or server is back). */
  inject: () => Promise<void>;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class FaultSystem {
  /** Copies the primary accepted, by token. */
  readonly received = new Map<string, number>();
  /** Processes whose exit a scenario caused, so it is not taken for a crash. */
  private readonly expectedExits = new Set<ServiceProcess>();
  /** Every process started, including those a scenario stopped, for their logs. */
  private readonly started: ServiceProcess[];

  private constructor(
    readonly suite: Suite,
    readonly primary: FakePrimary,
    readonly dns: TestDnsServer,
    private readonly database: pg.Pool,
  ) {
    this.started = [...suite.processes];
  }

  static async start(workers = 2): Promise<FaultSystem> {
    const dns = await TestDnsServer.start({ 'faults.example': { A: ['127.0.0.1'] } });
    const primary = await FakePrimary.create();
    const services: ServiceName[] = ['queue-store', 'greylist', 'ingress', 'admin-api'];
    for (let index = 0; index < workers; index++) {
      services.push('delivery-worker');
    }
    const suite = await startSuite({
      services,
      env: {
        DNS_SERVERS: dns.server,
        MX_LOG_LEVEL: 'info',
        // A restarted ingress forgets which clients waited for the greeting, and the load
        // reconnects at once after a fault.
        MX_PREGREET_WAIT: '0s',
        // Without a delay the first attempt of a triplet passes, and every check still reads
        // and writes its triplet in Redis.
        MX_GREYLIST_DELAY: '0s',
        MX_GREYLIST_AUTO_WHITELIST: '0',
        MX_SPOOL_TIMEOUT: '10s',
        MX_RETRY_MIN: '1s',
        MX_RETRY_MAX: '4s',
        MX_PROBE_INTERVAL_MIN: '1s',
        MX_PROBE_INTERVAL_MAX: '2s',
        MX_CONNECT_TIMEOUT: '2s',
        MX_LEASE_TIME: '15s',
        MX_DELIVERY_TIMEOUT: '5s',
        // Sessions of the load keep sending until the grace ends, so a short grace keeps the
        // SIGTERM scenarios short. sigterm.test.ts waits for the stop limit that follows.
        MX_SHUTDOWN_GRACE: '5s',
      },
    });
    const database = new pg.Pool({ connectionString: suite.environment.database.url, max: 1 });
    database.on('error', () => undefined);
    const system = new FaultSystem(suite, primary, dns, database);
    primary.onData = async (message) => {
      // A primary that takes a moment per message keeps deliveries in flight when a fault hits.
      await sleep(PRIMARY_DATA_DELAY_MS);
      const token = readToken(message.raw);
      if (token !== undefined) {
        system.received.set(token, (system.received.get(token) ?? 0) + 1);
      }
      return undefined;
    };
    await primary.start();
    try {
      await suite.api('POST', '/api/domains', { domain: MEMBER_DOMAIN, memberNumber: '1' });
      await suite.api('POST', `/api/domains/${MEMBER_DOMAIN}/approve`);
      await suite.api('PATCH', `/api/domains/${MEMBER_DOMAIN}`, {
        primaryHosts: [primary.address],
      });
      await suite.waitUntilRelayed(MEMBER_DOMAIN);
    } catch (error) {
      await system.stop();
      throw error;
    }
    return system;
  }

  /**
   * Returns the position in suite.processes of the index-th process of a service; the two
   * delivery workers are 0 and 1.
   */
  slot(name: ServiceName, index = 0): number {
    const slots = this.suite.processes
      .map((child, slot) => ({ child, slot }))
      .filter(({ child }) => child.name === name);
    const found = slots[index];
    if (!found) {
      throw new Error(`no process ${index} of ${name}`);
    }
    return found.slot;
  }

  process(name: ServiceName, index = 0): ServiceProcess {
    return this.suite.processes[this.slot(name, index)] as ServiceProcess;
  }

  /** Sends a signal to a service; its exit is expected, not counted as a crash. */
  signal(name: ServiceName, signal: NodeJS.Signals, index = 0): ServiceProcess {
    const child = this.process(name, index);
    this.expectedExits.add(child);
    child.child.kill(signal);
    return child;
  }

  /** Starts a service again in the slot of its exited process and waits until it serves. */
  async restart(name: ServiceName, index = 0): Promise<void> {
    const slot = this.slot(name, index);
    const old = this.suite.processes[slot] as ServiceProcess;
    await old.wait();
    const child = startService(name, this.suite.env);
    this.suite.processes[slot] = child;
    this.started.push(child);
    await child.waitForLog(READY_LINES[name], 30_000);
  }

  /** Returns the processes that exited without a scenario asking them to. */
  crashed(): ServiceProcess[] {
    return this.suite.processes.filter(
      (child) => child.exitCode !== undefined && !this.expectedExits.has(child),
    );
  }

  /** Starts every crashed process again, so that later scenarios find the whole system. */
  async restartCrashed(): Promise<void> {
    for (const child of this.crashed()) {
      this.expectedExits.add(child);
      const index = this.suite.processes
        .filter((other) => other.name === child.name)
        .indexOf(child);
      await this.restart(child.name, index);
    }
  }

  /** Counts recipients by state; returns undefined while the database is unreachable. */
  async states(): Promise<Record<string, number> | undefined> {
    try {
      const result = await this.database.query<{ state: string; count: number }>(
        'SELECT state::text, count(*)::int AS count FROM recipients GROUP BY state',
      );
      return Object.fromEntries(result.rows.map((row) => [row.state, row.count]));
    } catch {
      return undefined;
    }
  }

  /**
   * Waits until every token was received and no recipient waits in the spool. Returns the
   * last recipient counts by state.
   */
  async waitForDrain(tokens: string[], timeoutMs: number): Promise<Record<string, number>> {
    const deadline = Date.now() + timeoutMs;
    let states: Record<string, number> = {};
    for (;;) {
      states = (await this.states()) ?? states;
      const waiting = WAITING_STATES.some((state) => (states[state] ?? 0) > 0);
      const missing = tokens.some((token) => !this.received.has(token));
      if ((!waiting && !missing) || Date.now() > deadline) {
        return states;
      }
      await sleep(250);
    }
  }

  /** Runs the load, injects the fault once part of it was accepted, and counts the outcome. */
  async runScenario(name: string, options: ScenarioOptions): Promise<ScenarioResult> {
    const startedAt = Date.now();
    const load = new LoadSender({
      port: this.suite.smtpPort,
      scenario: name,
      messages: options.messages,
      sessions: options.sessions,
      sender: SENDER,
      recipients: RECIPIENTS,
    });
    const sending = load.run();
    await load.whenAccepted(Math.floor(options.messages * options.faultAt));
    try {
      await options.inject();
    } finally {
      await sending;
    }

    const accepted = load.messages.filter((message) => message.accepted);
    const states = await this.waitForDrain(
      accepted.map((message) => message.token),
      options.drainTimeoutMs,
    );
    const counts = this.countReceived(load.messages.map((message) => message.token));
    const lost = accepted
      .filter((message) => !this.received.has(message.token))
      .map((message) => message.token);
    // The raw copies are not needed once counted.
    this.primary.messages.length = 0;

    const line = `fault=${name} sent=${options.messages} accepted=${accepted.length} delivered=${counts.delivered} lost=${lost.length} duplicated=${counts.duplicated}`;
    const waiting = WAITING_STATES.filter((state) => (states[state] ?? 0) > 0).map((state) => [
      state,
      states[state] as number,
    ]);
    return {
      name,
      sent: options.messages,
      accepted: accepted.length,
      delivered: counts.delivered,
      lost,
      duplicated: counts.duplicated,
      waiting: Object.fromEntries(waiting),
      failed: states.failed ?? 0,
      failures: Object.fromEntries(load.failures),
      problems: this.problemsLogged(startedAt),
      line,
    };
  }

  /** Counts the tokens the primary received at least once, and the copies beyond the first. */
  private countReceived(tokens: string[]): { delivered: number; duplicated: number } {
    let delivered = 0;
    let duplicated = 0;
    for (const token of tokens) {
      const copies = this.received.get(token) ?? 0;
      if (copies > 0) {
        delivered += 1;
        duplicated += copies - 1;
      }
    }
    return { delivered, duplicated };
  }

  /**
   * Counts the warnings and errors that services logged since `since` (epoch milliseconds),
   * by service and message, so a report shows how a fault went.
   */
  problemsLogged(since: number): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const child of this.started) {
      for (const line of child.output.join('').split('\n')) {
        const entry = /"level":"(warn|error|fatal)".*?"time":"([^"]+)".*"msg":"([^"]*)"/.exec(line);
        if (entry && Date.parse(entry[2] as string) >= since) {
          const key = `${child.name} ${entry[1]}: ${entry[3]}`;
          counts[key] = (counts[key] ?? 0) + 1;
        }
      }
    }
    return counts;
  }

  /** Recent output of every process, for a failing scenario's message. */
  logs(lines = 30): string {
    return this.suite.processes
      .map((child) => `--- ${child.name} (exit ${child.exitCode})\n${child.tail(lines)}`)
      .join('\n');
  }

  async stop(): Promise<void> {
    await this.database.end().catch(() => undefined);
    await this.suite.stop();
    await this.primary.stop();
    await this.dns.close();
  }
}
