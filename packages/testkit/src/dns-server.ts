/**
 * A small authoritative DNS server for tests, on UDP 127.0.0.1 and a free port. It serves MX, A,
 * AAAA, PTR and TXT records from a zone object that a test can change while the server runs.
 * Point the code under test at `server` (`127.0.0.1:<port>`, the DNS_SERVERS form).
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv4, isIPv6 } from 'node:net';
import dnsPacket, { type Answer, type Question } from 'dns-packet';

export interface TestMxRecord {
  preference: number;
  /** Host name of the mail exchanger; `.` is the null MX of RFC 7505. */
  exchange: string;
}

export interface TestDnsRecords {
  MX?: TestMxRecord[];
  A?: string[];
  AAAA?: string[];
  /** Host names, for owner names made with reverseName(). */
  PTR?: string[];
  /** One string per record, such as `v=spf1 ip4:192.0.2.0/24 -all`. */
  TXT?: string[];
}

/** Records by owner name; names compare case-insensitively and a trailing dot is ignored. */
export type TestDnsZone = Record<string, TestDnsRecords>;

/** A failure the server returns for a name in place of its records. */
export type TestDnsFailure = 'SERVFAIL' | 'REFUSED' | 'no-response';

export interface TestDnsQuery {
  name: string;
  type: string;
}

const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;

function normalizeName(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

/**
 * Returns the owner name of an address's PTR record: `89.0.107.40.in-addr.arpa` for 40.107.0.89,
 * and the nibble form under `ip6.arpa` for IPv6.
 */
export function reverseName(address: string): string {
  if (isIPv4(address)) {
    return `${address.split('.').reverse().join('.')}.in-addr.arpa`;
  }
  if (!isIPv6(address)) {
    throw new Error(`${JSON.stringify(address)} is not an IP address`);
  }
  const [head = '', tail] = address.split('::');
  const groups = (text: string) => (text === '' ? [] : text.split(':'));
  const headGroups = groups(head);
  const tailGroups = tail === undefined ? [] : groups(tail);
  const zeros = new Array<string>(8 - headGroups.length - tailGroups.length).fill('0');
  const nibbles = [...headGroups, ...zeros, ...tailGroups]
    .map((group) => group.padStart(4, '0'))
    .join('');
  return `${[...nibbles].reverse().join('.')}.ip6.arpa`;
}

export class TestDnsServer {
  /** Every question received, in order, so tests can check caching. */
  readonly queries: TestDnsQuery[] = [];
  private readonly zone = new Map<string, TestDnsRecords>();
  private readonly failures = new Map<string, TestDnsFailure>();

  private constructor(
    private readonly socket: Socket,
    readonly port: number,
    zone: TestDnsZone,
    private readonly ttl: number,
  ) {
    this.setZone(zone);
    socket.on('message', (message, remote) => this.answer(message, remote));
  }

  /** Binds a UDP socket on 127.0.0.1 and a free port and serves the zone. */
  static async start(
    zone: TestDnsZone = {},
    options: { ttl?: number } = {},
  ): Promise<TestDnsServer> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '127.0.0.1', () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new TestDnsServer(socket, socket.address().port, zone, options.ttl ?? 0);
  }

  /** The server as `127.0.0.1:<port>`, the form DNS_SERVERS and Resolver.setServers take. */
  get server(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Replaces the whole zone. */
  setZone(zone: TestDnsZone): void {
    this.zone.clear();
    for (const [name, records] of Object.entries(zone)) {
      this.zone.set(normalizeName(name), records);
    }
  }

  /** Sets the records of one name, or removes the name (NXDOMAIN from then on) with undefined. */
  setRecords(name: string, records: TestDnsRecords | undefined): void {
    if (records === undefined) {
      this.zone.delete(normalizeName(name));
    } else {
      this.zone.set(normalizeName(name), records);
    }
  }

  /** Makes every query for a name fail in the given way, or serve records again with undefined. */
  setFailure(name: string, failure: TestDnsFailure | undefined): void {
    if (failure === undefined) {
      this.failures.delete(normalizeName(name));
    } else {
      this.failures.set(normalizeName(name), failure);
    }
  }

  /** Returns how many questions for a name, and optionally a type, the server received. */
  queryCount(name: string, type?: string): number {
    const target = normalizeName(name);
    return this.queries.filter(
      (query) => query.name === target && (type === undefined || query.type === type),
    ).length;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }

  /** Answers one query; malformed packets and names set to `no-response` get no reply. */
  private answer(message: Buffer, remote: RemoteInfo): void {
    let query: ReturnType<typeof dnsPacket.decode>;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return;
    }
    const question = query.questions?.[0];
    if (!question) {
      return;
    }
    const name = normalizeName(question.name);
    this.queries.push({ name, type: question.type });
    const failure = this.failures.get(name);
    if (failure === 'no-response') {
      return;
    }

    const { rcode, answers } = this.lookUp(name, question, failure);
    const response = dnsPacket.encode({
      type: 'response',
      id: query.id,
      flags:
        dnsPacket.AUTHORITATIVE_ANSWER | (query.flag_rd ? dnsPacket.RECURSION_DESIRED : 0) | rcode,
      questions: [question],
      answers,
    });
    this.socket.send(response, remote.port, remote.address);
  }

  /** Unknown names get NXDOMAIN; a known name without records of the type gets NOERROR and none. */
  private lookUp(
    name: string,
    question: Question,
    failure: 'SERVFAIL' | 'REFUSED' | undefined,
  ): { rcode: number; answers: Answer[] } {
    if (failure !== undefined) {
      return { rcode: RCODE[failure], answers: [] };
    }
    const records = this.zone.get(name);
    if (records === undefined) {
      return { rcode: RCODE.NXDOMAIN, answers: [] };
    }
    return { rcode: RCODE.NOERROR, answers: this.answersFor(question, records) };
  }

  private answersFor(question: Question, records: TestDnsRecords): Answer[] {
    const base = { name: question.name, ttl: this.ttl, class: 'IN' as const };
    switch (question.type) {
      case 'MX':
        return (records.MX ?? []).map((mx) => ({
          ...base,
          type: 'MX' as const,
          data: { preference: mx.preference, exchange: mx.exchange === '.' ? '' : mx.exchange },
        }));
      case 'A':
        return (records.A ?? []).map((address) => ({ ...base, type: 'A' as const, data: address }));
      case 'AAAA':
        return (records.AAAA ?? []).map((address) => ({
          ...base,
          type: 'AAAA' as const,
          data: address,
        }));
      case 'PTR':
        return (records.PTR ?? []).map((host) => ({ ...base, type: 'PTR' as const, data: host }));
      case 'TXT':
        return (records.TXT ?? []).map((text) => ({ ...base, type: 'TXT' as const, data: text }));
      default:
        return [];
    }
  }
}

/** Starts a TestDnsServer serving the zone. */
export function startDnsServer(
  zone: TestDnsZone = {},
  options: { ttl?: number } = {},
): Promise<TestDnsServer> {
  return TestDnsServer.start(zone, options);
}
