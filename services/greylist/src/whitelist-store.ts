/**
 * Static whitelist entries added through the admin API, kept in Redis so that every replica of
 * the greylist service uses the same list. The entries are one hash that maps `<kind> <value>` to
 * JSON `{note, createdAt}`. Each change also increments a version counter. Every replica reads
 * the counter once per REFRESH_INTERVAL_MS and reloads the hash when it changed, and the replica
 * that made a change reloads before it replies. So a change applies to new checks on every
 * replica within about a second.
 *
 * Unlike triplet keys, entries are stored in the clear: they are values an administrator
 * entered, and the admin API must list them.
 */
import type { GreylistWhitelistEntry, GreylistWhitelistKind } from '@secondary-mx/contracts';
import { GREYLIST_WHITELIST_KINDS } from '@secondary-mx/contracts';
import type { Logger } from '@secondary-mx/logger';
import type { Redis } from 'ioredis';
import { throttle } from './log-throttle.ts';
import {
  StaticWhitelist,
  type StaticWhitelistLists,
  type WhitelistMatch,
  type WhitelistMatcher,
  type WhitelistSubject,
} from './static-whitelist.ts';
import { InvalidWhitelistValueError, normalizeWhitelistValue } from './whitelist-value.ts';

/**
 * Maximum entries kept in Redis. Every replica keeps them all in memory and tries the client
 * networks and suffixes one by one on each check, so the bound keeps a check fast.
 */
export const MAX_STORED_ENTRIES = 10_000;
export const REFRESH_INTERVAL_MS = 1_000;
const ERROR_LOG_INTERVAL_MS = 60_000;

/** The outcome of a change that the caller reports back, or the reason it was not made. */
export type WhitelistChange =
  | { ok: true; entry: GreylistWhitelistEntry; changed: boolean }
  | { ok: false; error: 'not-found' | 'conflict'; message: string };

const SETTING_OF_KIND: Record<GreylistWhitelistKind, string> = {
  client: 'MX_GREYLIST_WHITELIST_CLIENTS',
  name: 'MX_GREYLIST_WHITELIST_NAMES',
  sender: 'MX_GREYLIST_WHITELIST_SENDERS',
};

/**
 * KEYS[1]: the entries hash, KEYS[2]: the version counter. ARGV: field, JSON metadata, maximum
 * entries. Returns { 'exists', metadata } when the field is present, { 'full' } when the hash
 * has the maximum, or { 'added' }.
 */
const ADD_SCRIPT = `
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
  return { 'exists', existing }
end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return { 'full' }
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[2])
return { 'added' }
`;

/** KEYS as ADD_SCRIPT, ARGV[1]: the field. Returns the removed metadata, or false when absent. */
const REMOVE_SCRIPT = `
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if not existing then
  return false
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('INCR', KEYS[2])
return existing
`;

interface StoredMetadata {
  note?: string;
  createdAt?: string;
}

export class WhitelistStore implements WhitelistMatcher {
  private readonly entriesKey: string;
  private readonly versionKey: string;
  private current: StaticWhitelist;
  /** The counter value of the loaded entries; undefined before the first load. */
  private loadedVersion: string | null | undefined;
  private reloadsStarted = 0;
  /** Sequence number of the reload whose entries are in use. */
  private reloadApplied = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly logRefreshError: () => void;
  private lastError: unknown;

  constructor(
    private readonly redis: Redis,
    keyPrefix: string,
    private readonly settings: StaticWhitelistLists,
    private readonly logger: Logger,
  ) {
    this.entriesKey = `${keyPrefix}greylist-whitelist`;
    this.versionKey = `${keyPrefix}greylist-whitelist-version`;
    this.current = new StaticWhitelist(settings);
    this.logRefreshError = throttle(ERROR_LOG_INTERVAL_MS, (suppressed) =>
      logger.warn(
        { err: this.lastError, suppressed },
        'reloading the greylist whitelist from Redis failed, checks use the entries loaded before',
      ),
    );
  }

  /** Every entry in effect: those of the settings, then those in Redis in the order loaded. */
  get entries(): readonly GreylistWhitelistEntry[] {
    return this.current.entries;
  }

  matchEntry(subject: WhitelistSubject): WhitelistMatch | undefined {
    return this.current.matchEntry(subject);
  }

  /**
   * Loads the entries and then reloads them whenever the version counter changes. A failed
   * first load is logged and retried like a failed refresh, so the settings entries apply
   * meanwhile.
   */
  async start(): Promise<void> {
    try {
      await this.reload();
    } catch (error) {
      this.lastError = error;
      this.logRefreshError();
    }
    this.scheduleRefresh();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private scheduleRefresh(): void {
    if (this.stopped) {
      return;
    }
    this.timer = setTimeout(() => {
      void this.refresh().finally(() => this.scheduleRefresh());
    }, REFRESH_INTERVAL_MS);
  }

  private async refresh(): Promise<void> {
    try {
      const version = await this.redis.get(this.versionKey);
      if (version !== this.loadedVersion) {
        await this.reload();
      }
    } catch (error) {
      this.lastError = error;
      this.logRefreshError();
    }
  }

  /** Reads the version counter and every entry in one transaction. Throws when Redis fails. */
  async reload(): Promise<void> {
    // Commands on one connection run in the order sent, so the reload started last reads the
    // newest entries. An earlier one that finishes later must not replace them.
    this.reloadsStarted += 1;
    const sequence = this.reloadsStarted;
    const results = await this.redis.multi().get(this.versionKey).hgetall(this.entriesKey).exec();
    const [version, fields] = (results ?? []).map(([error, value]) => {
      if (error) {
        throw error;
      }
      return value;
    }) as [string | null, Record<string, string>];

    const stored: GreylistWhitelistEntry[] = [];
    for (const [field, metadata] of Object.entries(fields)) {
      const entry = this.parseStored(field, metadata);
      if (entry !== undefined) {
        stored.push(entry);
      }
    }
    if (sequence > this.reloadApplied) {
      this.current = new StaticWhitelist(this.settings, stored);
      this.loadedVersion = version;
      this.reloadApplied = sequence;
    }
  }

  /**
   * Adds an entry, or leaves it as it is when it is already stored. Throws
   * InvalidWhitelistValueError for a value that is not valid for its kind, and the Redis error
   * when Redis fails.
   */
  async add(kind: GreylistWhitelistKind, raw: string, note?: string): Promise<WhitelistChange> {
    const value = normalizeWhitelistValue(kind, raw);
    const metadata: StoredMetadata = { createdAt: new Date().toISOString() };
    if (note !== undefined && note !== '') {
      metadata.note = note;
    }
    const [outcome, existing] = (await this.redis.eval(
      ADD_SCRIPT,
      2,
      this.entriesKey,
      this.versionKey,
      `${kind} ${value}`,
      JSON.stringify(metadata),
      MAX_STORED_ENTRIES,
    )) as [string, string | undefined];

    if (outcome === 'full') {
      return {
        ok: false,
        error: 'conflict',
        message: `the greylist whitelist already has the maximum of ${MAX_STORED_ENTRIES} entries; remove some first`,
      };
    }
    await this.reload();
    const stored = outcome === 'exists' ? parseMetadata(existing) : metadata;
    return {
      ok: true,
      entry: { kind, value, ...stored, source: 'api' },
      changed: outcome === 'added',
    };
  }

  /**
   * Removes a stored entry. An entry that only a setting lists is a conflict, since only the
   * setting can remove it. Throws InvalidWhitelistValueError for a value that is not valid for
   * its kind, and the Redis error when Redis fails.
   */
  async remove(kind: GreylistWhitelistKind, raw: string): Promise<WhitelistChange> {
    const value = normalizeWhitelistValue(kind, raw);
    const removed = (await this.redis.eval(
      REMOVE_SCRIPT,
      2,
      this.entriesKey,
      this.versionKey,
      `${kind} ${value}`,
    )) as string | null;
    if (removed !== null) {
      await this.reload();
      return {
        ok: true,
        entry: { kind, value, ...parseMetadata(removed), source: 'api' },
        changed: true,
      };
    }

    const fromSetting = this.current.entries.some(
      (entry) => entry.source === 'setting' && entry.kind === kind && entry.value === value,
    );
    if (fromSetting) {
      return {
        ok: false,
        error: 'conflict',
        message: `${kind} ${value} is listed by the setting ${SETTING_OF_KIND[kind]}; remove it there`,
      };
    }
    return { ok: false, error: 'not-found', message: `${kind} ${value} is not whitelisted` };
  }

  /** Returns the entry of a stored field, or undefined after logging one that is not valid. */
  private parseStored(field: string, metadata: string): GreylistWhitelistEntry | undefined {
    const space = field.indexOf(' ');
    const kind = field.slice(0, space) as GreylistWhitelistKind;
    const value = field.slice(space + 1);
    if (space < 0 || !GREYLIST_WHITELIST_KINDS.includes(kind)) {
      this.logger.warn({ field }, 'ignoring a greylist whitelist entry of unknown kind in Redis');
      return undefined;
    }
    let normalized: string | undefined;
    try {
      normalized = normalizeWhitelistValue(kind, value);
    } catch (error) {
      if (!(error instanceof InvalidWhitelistValueError)) {
        throw error;
      }
    }
    if (normalized !== value) {
      this.logger.warn({ field }, 'ignoring an invalid greylist whitelist entry in Redis');
      return undefined;
    }
    return { kind, value, ...parseMetadata(metadata), source: 'api' };
  }
}

/** Returns the note and creation time of stored metadata, leaving out anything else. */
function parseMetadata(text: string | undefined): StoredMetadata {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text ?? '{}');
  } catch {
    return {};
  }
  const fields = typeof parsed === 'object' && parsed !== null ? (parsed as StoredMetadata) : {};
  const metadata: StoredMetadata = {};
  if (typeof fields.note === 'string') {
    metadata.note = fields.note;
  }
  if (typeof fields.createdAt === 'string') {
    metadata.createdAt = fields.createdAt;
  }
  return metadata;
}
