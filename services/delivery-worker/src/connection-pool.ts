/**
 * Idle SMTP sessions per next hop (host:port), so messages that follow each other closely share
 * one connection. A session is either idle here or held by exactly one delivery, never both, so
 * no session carries two messages at once.
 */
import type { SmtpSession } from './smtp-session.ts';

export interface PoolOptions {
  /** How long a session may stay idle before it is closed with QUIT. */
  idleTimeoutMs: number;
  /** Transactions after which a session is closed instead of kept. */
  maxTransactions: number;
}

interface IdleSession {
  session: SmtpSession;
  timer: NodeJS.Timeout;
  stopWatching: () => void;
}

export const DEFAULT_POOL_OPTIONS: PoolOptions = { idleTimeoutMs: 5000, maxTransactions: 100 };

function hopKey(host: string, port: number): string {
  return `${host}:${port}`;
}

export class ConnectionPool {
  private readonly idle = new Map<string, IdleSession[]>();
  private readonly busy = new Set<SmtpSession>();
  private closing = false;

  constructor(private readonly options: PoolOptions = DEFAULT_POOL_OPTIONS) {}

  /** Takes the most recently used idle session to a next hop; the caller must hand it back. */
  take(host: string, port: number): SmtpSession | undefined {
    const key = hopKey(host, port);
    const entries = this.idle.get(key) ?? [];
    let entry = entries.pop();
    while (entry?.session.closed) {
      this.forget(entry);
      entry = entries.pop();
    }
    if (entries.length === 0) {
      this.idle.delete(key);
    }
    if (!entry) {
      return undefined;
    }
    this.forget(entry);
    this.busy.add(entry.session);
    return entry.session;
  }

  /** Registers a newly opened session as held by the caller. */
  hold(session: SmtpSession): void {
    this.busy.add(session);
  }

  /**
   * Hands a held session back. It is kept idle when `reusable` and still open, else closed. The
   * caller sends RSET before it reuses a session, so a kept one may carry an unfinished envelope.
   */
  release(session: SmtpSession, reusable: boolean): void {
    this.busy.delete(session);
    const keep =
      reusable &&
      !this.closing &&
      !session.closed &&
      session.transactions < this.options.maxTransactions;
    if (!keep) {
      void session.quit();
      return;
    }
    const key = hopKey(session.target.host, session.target.port);
    const entry: IdleSession = {
      session,
      timer: setTimeout(() => this.expire(key, entry), this.options.idleTimeoutMs),
      stopWatching: session.onEnd(() => this.remove(key, entry)),
    };
    const entries = this.idle.get(key) ?? [];
    entries.push(entry);
    this.idle.set(key, entries);
  }

  /** Number of idle sessions, for tests and metrics. */
  get idleCount(): number {
    let count = 0;
    for (const entries of this.idle.values()) {
      count += entries.length;
    }
    return count;
  }

  /** Closes idle sessions with QUIT and held ones at once; later releases close their session. */
  async closeAll(): Promise<void> {
    this.closing = true;
    const quits: Promise<void>[] = [];
    for (const [key, entries] of this.idle) {
      for (const entry of [...entries]) {
        this.remove(key, entry);
        quits.push(entry.session.quit());
      }
    }
    for (const session of this.busy) {
      session.close();
    }
    await Promise.all(quits);
  }

  private expire(key: string, entry: IdleSession): void {
    this.remove(key, entry);
    void entry.session.quit();
  }

  private remove(key: string, entry: IdleSession): void {
    this.forget(entry);
    const entries = this.idle.get(key);
    if (!entries) {
      return;
    }
    const index = entries.indexOf(entry);
    if (index >= 0) {
      entries.splice(index, 1);
    }
    if (entries.length === 0) {
      this.idle.delete(key);
    }
  }

  private forget(entry: IdleSession): void {
    clearTimeout(entry.timer);
    entry.stopWatching();
  }
}
