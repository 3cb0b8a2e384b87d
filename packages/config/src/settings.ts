/**
 * Every setting of every service, declared once with its default, unit and bounds. A service
 * asks for the names it uses and gets a frozen, typed object, or one error that lists every
 * invalid or missing value at once.
 */
import { hostname } from 'node:os';
import ipaddr from 'ipaddr.js';
import { parseDuration } from './duration.ts';

export interface ListenAddress {
  host: string;
  port: number;
}

type Parser<T> = (raw: string) => T | Error;

interface Setting<T> {
  /** The value used when the variable is unset; undefined makes the setting required. */
  defaultValue: (() => string) | string | undefined;
  parse: Parser<T>;
  help: string;
}

function setting<T>(
  defaultValue: Setting<T>['defaultValue'],
  parse: Parser<T>,
  help: string,
): Setting<T> {
  return { defaultValue, parse, help };
}

function text(raw: string): string | Error {
  return raw.length > 0 ? raw : new Error('must not be empty');
}

function optionalText(raw: string): string {
  return raw;
}

function url(...protocols: string[]): Parser<string> {
  return (raw) => {
    try {
      const parsed = new URL(raw);
      if (!protocols.includes(parsed.protocol)) {
        return new Error(`must be a URL starting with ${protocols.join(' or ')}//`);
      }
      return raw;
    } catch {
      return new Error('must be a URL');
    }
  };
}

function integer(min: number, max: number): Parser<number> {
  return (raw) => {
    if (!/^\d+$/.test(raw.trim())) {
      return new Error('must be a whole number');
    }
    const value = Number(raw);
    if (value < min || value > max) {
      return new Error(`must be between ${min} and ${max}`);
    }
    return value;
  };
}

function duration(minMs: number, maxMs: number): Parser<number> {
  return (raw) => {
    const value = parseDuration(raw);
    if (value === undefined) {
      return new Error('must be a duration such as 90s, 5m, 2h, 35d or 1w');
    }
    if (value < minMs || value > maxMs) {
      return new Error(`must be between ${minMs / 1000}s and ${maxMs / 1000}s`);
    }
    return value;
  };
}

const HOSTNAME_PATTERN =
  /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** Parses comma-separated durations, sorted ascending. An empty value is an empty list. */
function durationList(minMs: number, maxMs: number): Parser<number[]> {
  const one = duration(minMs, maxMs);
  return (raw) => {
    const values: number[] = [];
    for (const part of raw.split(',')) {
      if (part.trim() === '') {
        continue;
      }
      const value = one(part);
      if (value instanceof Error) {
        return new Error(`"${part.trim()}" ${value.message}`);
      }
      values.push(value);
    }
    return [...new Set(values)].sort((a, b) => a - b);
  };
}

function hostnameValue(raw: string): string | Error {
  const name = raw.trim().replace(/\.$/, '').toLowerCase();
  return HOSTNAME_PATTERN.test(name) ? name : new Error('must be a DNS host name');
}

function hostnameList(raw: string): string[] | Error {
  const names: string[] = [];
  for (const part of raw.split(',')) {
    if (part.trim() === '') {
      continue;
    }
    const name = hostnameValue(part);
    if (name instanceof Error) {
      return new Error(`"${part.trim()}" ${name.message}`);
    }
    names.push(name);
  }
  return names.length > 0 ? names : new Error('must list at least one host name');
}

/**
 * Parses `host:port`, `[v6]:port` or `:port`. Port 0 is accepted only with `minPort` 0, for a
 * listener that takes any free port.
 */
export function parseHostPort(
  raw: string,
  defaultPort?: number,
  minPort = 1,
): ListenAddress | Error {
  const trimmed = raw.trim();
  if (/^[0-9a-f]*:[0-9a-f]*:[0-9a-f:.]*$/i.test(trimmed)) {
    // A bare IPv6 address has no port; with a port it must be written [v6]:port.
    if (defaultPort === undefined) {
      return new Error('must include a port: write an IPv6 address as [address]:port');
    }
    return { host: trimmed, port: defaultPort };
  }
  const match = /^(?:\[([0-9a-f:.]+)\]|([^:[\]]*))(?::(\d{1,5}))?$/i.exec(trimmed);
  if (!match) {
    return new Error('must be host:port, [IPv6]:port or :port');
  }
  const host = match[1] ?? match[2] ?? '';
  const port = match[3] === undefined ? defaultPort : Number(match[3]);
  if (port === undefined) {
    return new Error('must include a port');
  }
  if (port < minPort || port > 65535) {
    return new Error(`port must be between ${minPort} and 65535`);
  }
  return { host: host === '' ? '0.0.0.0' : host, port };
}

function listen(raw: string): ListenAddress | Error {
  return parseHostPort(raw);
}

/**
 * Parses the listen address of a metrics and health listener. An empty value returns undefined,
 * which turns the listener off, and port 0 takes any free port.
 */
function optionalListen(raw: string): ListenAddress | undefined | Error {
  return raw.trim() === '' ? undefined : parseHostPort(raw, undefined, 0);
}

/** Applies a parser to each part of a comma-separated list; an empty value is an empty list. */
function listOf<T>(parse: Parser<T>): Parser<T[]> {
  return (raw) => {
    const values: T[] = [];
    for (const part of raw.split(',')) {
      if (part.trim() === '') {
        continue;
      }
      const value = parse(part.trim());
      if (value instanceof Error) {
        return new Error(`"${part.trim()}" ${value.message}`);
      }
      values.push(value);
    }
    return values;
  };
}

/**
 * Parses `192.0.2.0/24`, `2001:db8::/32` or a single address into CIDR notation, with a single
 * address as /32 or /128.
 */
function cidr(raw: string): string | Error {
  const text = raw.includes('/') ? raw : `${raw}/${raw.includes(':') ? 128 : 32}`;
  try {
    const [address, prefix] = ipaddr.parseCIDR(text);
    return `${address.toString()}/${prefix}`;
  } catch {
    return new Error('must be an IP network such as 192.0.2.0/24 or 2001:db8::/32');
  }
}

/** Parses a host name suffix, `example.com` or `.example.com`, into the form without the dot. */
function hostnameSuffix(raw: string): string | Error {
  return hostnameValue(raw.replace(/^\./, ''));
}

function serverList(raw: string): string[] | Error {
  const servers: string[] = [];
  for (const part of raw.split(',')) {
    if (part.trim() === '') {
      continue;
    }
    const address = parseHostPort(part, 53);
    if (address instanceof Error) {
      return new Error(`"${part.trim()}" ${address.message}`);
    }
    const host = address.host.includes(':') ? `[${address.host}]` : address.host;
    servers.push(`${host}:${address.port}`);
  }
  return servers;
}

/** Parses on/off switches: `on`, `off`, `true`, `false`, `yes`, `no`, `1`, `0`. */
function flag(raw: string): boolean | Error {
  const value = raw.trim().toLowerCase();
  if (['on', 'true', 'yes', '1'].includes(value)) {
    return true;
  }
  if (['off', 'false', 'no', '0'].includes(value)) {
    return false;
  }
  return new Error('must be on or off');
}

/** Parses comma-separated DNS zones such as DNSBL zones. An empty value is an empty list. */
function zoneList(raw: string): string[] | Error {
  const zones: string[] = [];
  for (const part of raw.split(',')) {
    if (part.trim() === '') {
      continue;
    }
    const zone = hostnameValue(part);
    if (zone instanceof Error) {
      return new Error(`"${part.trim()}" must be a DNS zone name`);
    }
    zones.push(zone);
  }
  return [...new Set(zones)];
}

/**
 * Parses a regular expression that a whole value must match: it is anchored at both ends and
 * compiled with the `u` flag. A pattern that matches the empty string is rejected.
 */
function wholeMatchPattern(raw: string): RegExp | Error {
  let pattern: RegExp;
  try {
    pattern = new RegExp(`^(?:${raw})$`, 'u');
  } catch (error) {
    return new Error(`must be a valid regular expression (${(error as Error).message})`);
  }
  return pattern.test('') ? new Error('must not match an empty value') : pattern;
}

function oneOf<T extends string>(...values: T[]): Parser<T> {
  return (raw) => {
    const value = raw.trim().toLowerCase() as T;
    return values.includes(value) ? value : new Error(`must be one of ${values.join(', ')}`);
  };
}

const SECOND = 1000;
const DAY = 86_400_000;

export const SETTINGS = {
  AMQP_URL: setting('amqp://guest:guest@127.0.0.1:5672', url('amqp:', 'amqps:'), 'RabbitMQ URL'),
  DATABASE_URL: setting(
    'postgres://postgres@127.0.0.1:5432/secondary_mx',
    url('postgres:', 'postgresql:'),
    'PostgreSQL URL; the database is created when missing',
  ),
  REDIS_URL: setting('redis://127.0.0.1:6379/0', url('redis:', 'rediss:'), 'Redis URL'),
  MX_HOSTNAME: setting(
    () => hostname(),
    hostnameValue,
    'our name in the banner, Received: and DSNs',
  ),
  MX_SELF_NAMES: setting(
    undefined,
    hostnameList,
    'comma-separated names under which we appear in MX records (default: MX_HOSTNAME)',
  ),
  MX_SMTP_LISTEN: setting('0.0.0.0:2525', listen, 'SMTP listener, host:port'),
  MX_TLS_CERT_FILE: setting(
    '',
    optionalText,
    'PEM certificate chain for STARTTLS; without it STARTTLS is not offered',
  ),
  MX_TLS_KEY_FILE: setting('', optionalText, 'PEM private key of MX_TLS_CERT_FILE'),
  MX_TLS_RELOAD_INTERVAL: setting(
    '30s',
    duration(100, 60 * 60 * SECOND),
    'how often ingress checks the certificate and key files for changes',
  ),
  MX_ADMIN_LISTEN: setting('127.0.0.1:8025', listen, 'admin API listener, host:port'),
  MX_MEMBER_NUMBER_PATTERN: setting(
    '[A-Za-z0-9./-]{1,64}',
    wholeMatchPattern,
    'regular expression that a whole member number must match, after surrounding spaces are trimmed',
  ),
  MX_SMTP_CHECK_TIMEOUT: setting(
    '10s',
    duration(100, 60 * SECOND),
    "how long the admin API's DNS check waits for the primary's greeting and EHLO reply, connect included",
  ),
  MX_ADMIN_TOKEN: setting(
    undefined,
    (raw) => (raw.length >= 16 ? raw : new Error('must be at least 16 characters')),
    'bearer token of the administrators',
  ),
  MX_ADMIN_URL: setting(
    'http://127.0.0.1:8025',
    url('http:', 'https:'),
    'base URL of the admin API that mxctl calls',
  ),
  MX_MAX_MESSAGE_SIZE: setting(
    '26214400',
    integer(1024, 100 * 1024 * 1024),
    'largest accepted message in bytes, advertised with SIZE',
  ),
  MX_MAX_RECIPIENTS: setting('1000', integer(100, 100_000), 'recipients accepted per message'),
  MX_MAX_CONNECTIONS: setting(
    '500',
    integer(1, 100_000),
    'SMTP connections ingress serves at once; more get 421 4.7.0',
  ),
  MX_MAX_CONNECTIONS_PER_CLIENT: setting(
    '50',
    integer(1, 100_000),
    'SMTP connections from one client address at once; more get 421 4.7.0',
  ),
  MX_SMTP_TIMEOUT: setting(
    '300s',
    duration(SECOND, 60 * 60 * SECOND),
    'how long ingress waits for the next command or the next DATA bytes before 421 4.4.2',
  ),
  MX_MAX_ERRORS: setting(
    '20',
    integer(1, 1000),
    'error replies (4xx and 5xx, except 451 4.7.1 and 452 4.5.3) in one SMTP session before ingress answers 421 4.7.0 and closes',
  ),
  MX_PREGREET_WAIT: setting(
    '1s',
    duration(0, 60 * SECOND),
    'how long ingress holds the greeting back to catch clients that talk first',
  ),
  MX_PREGREET_TTL: setting(
    '1d',
    duration(0, 30 * DAY),
    'how long a client that waited for the greeting skips the wait; 0 makes every connection wait',
  ),
  // A default Postfix primary counts its own Received: too and rejects 50 (hopcount_limit).
  MX_MAX_HOPS: setting(
    '50',
    integer(1, 1000),
    'Received: header fields a stored message may carry, ours included; the rest get 554 5.4.6',
  ),
  MX_SENDER_DOMAIN_CHECK: setting(
    'on',
    flag,
    'look up the MAIL FROM domain in DNS and reject null MX and unknown domains (on or off)',
  ),
  MX_DNSBL_ZONES: setting(
    '',
    zoneList,
    'comma-separated DNS blocklist zones; a listed client gets 554 5.7.1 at RCPT',
  ),
  MX_DNS_TIMEOUT: setting(
    '5s',
    duration(50, 60 * SECOND),
    "how long ingress waits for one DNS answer in sender and DNSBL checks, and the admin API's DNS check for each lookup",
  ),
  MX_QUEUE_LIFETIME: setting('35d', duration(SECOND, 365 * DAY), 'how long a message is kept'),
  MX_BOUNCE_LIFETIME: setting(
    '5d',
    duration(SECOND, 365 * DAY),
    'how long a DSN we send is retried before it is dropped',
  ),
  MX_BOUNCE_SIZE_LIMIT: setting(
    '50000',
    integer(0, 100 * 1024 * 1024),
    'largest original returned whole in a DSN, also with RET=FULL; larger ones return headers only',
  ),
  MX_DELAY_WARNINGS: setting(
    '24h,7d',
    durationList(SECOND, 365 * DAY),
    'comma-separated message ages at which senders get a delay DSN; empty turns them off',
  ),
  MX_RETRY_MIN: setting('60s', duration(100, DAY), 'first retry delay'),
  MX_RETRY_MAX: setting('1h', duration(100, 7 * DAY), 'longest retry delay'),
  MX_LEASE_TIME: setting(
    '10m',
    duration(SECOND, DAY),
    'how long a delivery worker may hold a recipient before it is scheduled again',
  ),
  MX_SCHEDULER_INTERVAL: setting(
    '1s',
    duration(50, 60 * SECOND),
    'how often due recipients are looked for',
  ),
  MX_SCHEDULER_BATCH: setting('500', integer(1, 100_000), 'recipients leased per scheduler pass'),
  MX_DESTINATION_CONCURRENCY: setting(
    '10',
    integer(1, 1000),
    'SMTP connections to one destination domain at once, across all delivery workers',
  ),
  MX_MESSAGES_PER_CONNECTION: setting(
    '20',
    integer(1, 1000),
    'messages one delivery job sends over its SMTP connection',
  ),
  MX_PROBE_INTERVAL_MIN: setting(
    '2s',
    duration(100, DAY),
    'first interval between probes of a next hop that does not answer',
  ),
  MX_PROBE_INTERVAL_MAX: setting(
    '5s',
    duration(100, DAY),
    'longest interval between probes of a next hop that does not answer',
  ),
  MX_SPOOL_TIMEOUT: setting(
    '30s',
    duration(100, 10 * 60 * SECOND),
    'how long ingress waits for queue-store to commit a message before it answers 451',
  ),
  MX_GREYLIST_TIMEOUT: setting(
    '3s',
    duration(50, 60 * SECOND),
    'how long ingress waits for a greylist verdict',
  ),
  MX_VERIFY_TIMEOUT: setting(
    '5s',
    duration(50, 60 * SECOND),
    'how long ingress waits for the primary to judge a recipient of a verify domain',
  ),
  MX_VERIFY_POSITIVE_TTL: setting(
    '31d',
    duration(SECOND, 365 * DAY),
    'how long a recipient the primary accepted is remembered as valid',
  ),
  MX_VERIFY_NEGATIVE_TTL: setting(
    '3h',
    duration(SECOND, 365 * DAY),
    'how long a recipient the primary rejected with 5xx is remembered as invalid',
  ),
  MX_GREYLIST_DELAY: setting('300s', duration(0, DAY), 'minimum wait before a retry passes'),
  MX_GREYLIST_RETRY_WINDOW: setting(
    '2d',
    duration(SECOND, 30 * DAY),
    'how long a first attempt is remembered',
  ),
  MX_GREYLIST_MAX_AGE: setting(
    '35d',
    duration(SECOND, 365 * DAY),
    'how long a passed triplet stays whitelisted',
  ),
  MX_GREYLIST_AUTO_WHITELIST: setting(
    '5',
    integer(0, 1000),
    'passes of a client group, counted at most once per hour, after which the group is not greylisted; 0 turns it off',
  ),
  MX_GREYLIST_WHITELIST_CLIENTS: setting(
    '',
    listOf(cidr),
    'comma-separated client networks that are not greylisted, such as 192.0.2.0/24',
  ),
  MX_GREYLIST_WHITELIST_NAMES: setting(
    '',
    listOf(hostnameSuffix),
    'comma-separated suffixes of forward-confirmed client names that are not greylisted',
  ),
  MX_GREYLIST_WHITELIST_SENDERS: setting(
    '',
    listOf(hostnameValue),
    'comma-separated sender domains that are not greylisted, subdomains included',
  ),
  MX_GREYLIST_ON_ERROR: setting(
    'open',
    oneOf('open', 'closed'),
    'what ingress does without a greylist verdict in time: open accepts, closed answers 451',
  ),
  MX_INGRESS_METRICS_LISTEN: setting(
    '127.0.0.1:9101',
    optionalListen,
    'ingress listener of /metrics and /health, host:port; port 0 takes a free port, empty turns it off',
  ),
  MX_GREYLIST_METRICS_LISTEN: setting(
    '127.0.0.1:9102',
    optionalListen,
    'greylist listener of /metrics and /health, host:port; port 0 takes a free port, empty turns it off',
  ),
  MX_QUEUE_STORE_METRICS_LISTEN: setting(
    '127.0.0.1:9103',
    optionalListen,
    'queue-store listener of /metrics and /health, host:port; port 0 takes a free port, empty turns it off',
  ),
  MX_DELIVERY_METRICS_LISTEN: setting(
    '127.0.0.1:9104',
    optionalListen,
    'delivery-worker listener of /metrics and /health, host:port; each replica on one host needs its own port or port 0; empty turns it off',
  ),
  MX_RETENTION: setting('7d', duration(SECOND, 365 * DAY), 'how long final messages stay visible'),
  MX_DOMAIN_REFRESH: setting(
    '30s',
    duration(SECOND, DAY),
    'how often ingress reloads the approved domains besides on change events',
  ),
  MX_DELIVERY_PORT: setting('25', integer(1, 65535), 'port of MX hosts found in DNS'),
  MX_DELIVERY_CONCURRENCY: setting('20', integer(1, 1000), 'jobs one delivery worker runs at once'),
  MX_DELIVERY_TIMEOUT: setting(
    '5m',
    duration(SECOND, 60 * 60 * SECOND),
    'longest time for one delivery, from connect to the reply after DATA',
  ),
  MX_CONNECT_TIMEOUT: setting(
    '30s',
    duration(100, 10 * 60 * SECOND),
    'TCP connect timeout to a next hop',
  ),
  MX_AMQP_PREFIX: setting(
    '',
    optionalText,
    'prefix of every RabbitMQ queue and exchange name, to run several installations on one vhost',
  ),
  MX_REDIS_PREFIX: setting('mx:', text, 'prefix of every Redis key'),
  MX_SHUTDOWN_GRACE: setting(
    '30s',
    duration(0, 10 * 60 * SECOND),
    'how long a service lets work in progress finish after SIGTERM or SIGINT: SMTP sessions in ingress, the message in hand in a delivery worker, requests and transactions in the others',
  ),
  MX_LOG_LEVEL: setting(
    'info',
    oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'),
    'pino log level',
  ),
  DNS_SERVERS: setting(
    '',
    serverList,
    'comma-separated DNS servers, host:port (default: system resolver)',
  ),
} as const;

export type SettingName = keyof typeof SETTINGS;
type ValueOf<N extends SettingName> = (typeof SETTINGS)[N] extends Setting<infer T> ? T : never;
export type Settings<N extends SettingName> = Readonly<{ [K in N]: ValueOf<K> }>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid settings:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Reads the named settings from the environment. Throws a ConfigError that lists every invalid
 * or missing variable by name.
 */
export function loadSettings<N extends SettingName>(
  names: readonly N[],
  env: NodeJS.ProcessEnv = process.env,
): Settings<N> {
  const values: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const name of names) {
    const spec = SETTINGS[name] as Setting<unknown>;
    const raw = env[name];
    let source: string | undefined;
    if (raw !== undefined) {
      source = raw;
    } else if (typeof spec.defaultValue === 'function') {
      source = spec.defaultValue();
    } else {
      source = spec.defaultValue;
    }
    if (source === undefined) {
      if (name === 'MX_SELF_NAMES') {
        continue;
      }
      problems.push(`${name} is missing: set it to the ${spec.help}`);
      continue;
    }
    const value = spec.parse(source);
    if (value instanceof Error) {
      problems.push(
        `${name}=${name === 'MX_ADMIN_TOKEN' ? '(hidden)' : JSON.stringify(source)} ${value.message} (${spec.help})`,
      );
      continue;
    }
    values[name] = value;
  }
  if (
    (names as readonly string[]).includes('MX_SELF_NAMES') &&
    values.MX_SELF_NAMES === undefined
  ) {
    const own = hostnameValue(env.MX_HOSTNAME ?? hostname());
    values.MX_SELF_NAMES = own instanceof Error ? [] : [own];
  }
  const retryMin = values.MX_RETRY_MIN as number | undefined;
  const retryMax = values.MX_RETRY_MAX as number | undefined;
  if (retryMin !== undefined && retryMax !== undefined && retryMin > retryMax) {
    problems.push('MX_RETRY_MIN must not be larger than MX_RETRY_MAX');
  }
  const probeMin = values.MX_PROBE_INTERVAL_MIN as number | undefined;
  const probeMax = values.MX_PROBE_INTERVAL_MAX as number | undefined;
  if (probeMin !== undefined && probeMax !== undefined && probeMin > probeMax) {
    problems.push('MX_PROBE_INTERVAL_MIN must not be larger than MX_PROBE_INTERVAL_MAX');
  }
  const leaseTime = values.MX_LEASE_TIME as number | undefined;
  const deliveryTimeout = values.MX_DELIVERY_TIMEOUT as number | undefined;
  if (leaseTime !== undefined && deliveryTimeout !== undefined && leaseTime <= deliveryTimeout) {
    // A worker starts a message only when the lease has a full MX_DELIVERY_TIMEOUT left, so a
    // shorter lease would never let a message start.
    problems.push(
      `MX_LEASE_TIME (${leaseTime / 1000}s) must be larger than MX_DELIVERY_TIMEOUT (${deliveryTimeout / 1000}s): raise MX_LEASE_TIME or lower MX_DELIVERY_TIMEOUT`,
    );
  }
  const certFile = values.MX_TLS_CERT_FILE as string | undefined;
  const keyFile = values.MX_TLS_KEY_FILE as string | undefined;
  if (certFile !== undefined && keyFile !== undefined && (certFile === '') !== (keyFile === '')) {
    problems.push('MX_TLS_CERT_FILE and MX_TLS_KEY_FILE must be set together');
  }
  if (problems.length > 0) {
    throw new ConfigError(problems);
  }
  return Object.freeze(values) as Settings<N>;
}

/** Loads settings like loadSettings, but prints the problems and exits with status 78 (EX_CONFIG). */
export function loadSettingsOrExit<N extends SettingName>(
  service: string,
  names: readonly N[],
): Settings<N> {
  try {
    return loadSettings(names);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${service}: ${error.message}\n`);
      process.exit(78);
    }
    throw error;
  }
}
