/**
 * Clients that waited for the greeting, remembered for MX_PREGREET_TTL so that their later
 * connections skip the pregreet wait, as Postfix's postscreen_greet_ttl does. The record is
 * per ingress process and bounded in size: a replica that does not know a client only makes
 * it wait once more.
 */

/** Most clients remembered; the oldest pass is forgotten first. */
const MAX_CLIENTS = 100_000;

export class PregreetPasses {
  /** Client address to the time its pass runs out, in insertion order. */
  private readonly expiries = new Map<string, number>();
  /** Sessions that talked before the greeting and whose wait has not ended yet. */
  private readonly earlyTalkers = new Set<string>();

  constructor(private readonly ttlMs: number) {}

  /** Tells whether the client passed the pregreet test within the TTL. */
  has(client: string): boolean {
    const expiry = this.expiries.get(client);
    if (expiry === undefined) {
      return false;
    }
    if (expiry <= Date.now()) {
      this.expiries.delete(client);
      return false;
    }
    return true;
  }

  /** Records a pass; a no-op while the TTL is zero. */
  add(client: string): void {
    if (this.ttlMs <= 0) {
      return;
    }
    this.expiries.delete(client);
    this.expiries.set(client, Date.now() + this.ttlMs);
    if (this.expiries.size > MAX_CLIENTS) {
      const oldest = this.expiries.keys().next().value;
      if (oldest !== undefined) {
        this.expiries.delete(oldest);
      }
    }
  }

  /** Forgets the client of a session that talked before the greeting. */
  rejectEarlyTalker(sessionId: string, client: string): void {
    this.expiries.delete(client);
    this.earlyTalkers.add(sessionId);
  }

  /** Ends a session's wait: records a pass unless the session talked first. */
  finishWait(sessionId: string, client: string): void {
    if (this.earlyTalkers.delete(sessionId)) {
      return;
    }
    this.add(client);
  }
}
