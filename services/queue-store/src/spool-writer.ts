/**
 * Group commit of spool writes. A message that arrives while no write is in flight is stored
 * at once. Messages that arrive during a write are stored together by the next one, in one
 * statement and one commit. This adds no wait to a lone message and saves a round trip and a
 * WAL flush per message under load.
 *
 * Each message has the deadline after which ingress has answered 451, so the sender will send
 * it again. A write commits only while every message in it is at least DEADLINE_MARGIN_MS
 * before its deadline; otherwise it is rolled back and the late messages are rejected, so a
 * slow database does not store a message that the sender was told to send again.
 */
import { insertMessages, type NewMessage, type Pool, withTransaction } from '@secondary-mx/db';

/** Maximum messages in one statement, which bounds its size and the work lost to one error. */
const MAX_BATCH = 64;
/**
 * Time kept in hand before a deadline for the COMMIT and the reply to reach ingress.
 * NOTE: a COMMIT or a reply slower than this can still store a message after ingress replied
 * 451, so the sender sends it again and it is stored twice.
 */
const DEADLINE_MARGIN_MS = 1000;

/** The message reached its deadline before it was committed; nothing was stored. */
export class DeadlinePassedError extends Error {
  constructor(queueId: string) {
    super(`spool write of ${queueId} passed its deadline and was rolled back`);
  }
}

interface PendingWrite {
  message: NewMessage;
  /** Epoch milliseconds after which the write must not commit. */
  commitBy: number;
  resolve: (inserted: boolean) => void;
  reject: (error: unknown) => void;
}

export class SpoolWriter {
  private readonly pending: PendingWrite[] = [];
  private writing = false;

  constructor(private readonly pool: Pool) {}

  /**
   * Stores the message unless its deadline (epoch milliseconds) comes first. Resolves false
   * when its queue id was stored before; rejects with DeadlinePassedError when nothing was
   * stored because the deadline came too close.
   */
  write(message: NewMessage, deadline: number): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.pending.push({ message, commitBy: deadline - DEADLINE_MARGIN_MS, resolve, reject });
      if (!this.writing) {
        void this.drain();
      }
    });
  }

  private async drain(): Promise<void> {
    this.writing = true;
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, MAX_BATCH);
      await this.writeBatch(batch);
    }
    this.writing = false;
  }

  private async writeBatch(writes: PendingWrite[]): Promise<void> {
    const batch = this.withoutLate(writes);
    if (batch.length === 0) {
      return;
    }
    try {
      const inserted = await this.commit(batch);
      for (const write of batch) {
        write.resolve(inserted.has(write.message.queueId));
      }
      return;
    } catch (error) {
      if (error instanceof DeadlinePassedError) {
        // Rolled back: store again the writes that still have time, reject the others.
        await this.writeBatch(batch);
        return;
      }
      if (batch.length === 1) {
        batch[0]?.reject(error);
        return;
      }
    }
    // One bad message must not fail the others: store each alone to find it.
    for (const write of batch) {
      await this.writeBatch([write]);
    }
  }

  /** Rejects the writes whose deadline is too close and returns the others. */
  private withoutLate(writes: PendingWrite[]): PendingWrite[] {
    const now = Date.now();
    const inTime: PendingWrite[] = [];
    for (const write of writes) {
      if (write.commitBy <= now) {
        write.reject(new DeadlinePassedError(write.message.queueId));
      } else {
        inTime.push(write);
      }
    }
    return inTime;
  }

  /**
   * Inserts the batch in a transaction bounded by its earliest deadline; throws
   * DeadlinePassedError, after rolling back, when the insert ends too close to it.
   */
  private commit(batch: PendingWrite[]): Promise<Set<string>> {
    const commitBy = Math.min(...batch.map((write) => write.commitBy));
    return withTransaction(this.pool, async (client) => {
      const remainingMs = Math.max(1, commitBy - Date.now());
      // Waiting for a lock or a slow disk beyond the deadline would be wasted work.
      await client.query(`SET LOCAL statement_timeout = ${Math.ceil(remainingMs)}`);
      let inserted: Set<string>;
      try {
        inserted = await insertMessages(
          client,
          batch.map((write) => write.message),
        );
      } catch (error) {
        if (Date.now() >= commitBy) {
          throw new DeadlinePassedError(batch[0]?.message.queueId ?? '');
        }
        throw error;
      }
      if (Date.now() >= commitBy) {
        throw new DeadlinePassedError(batch[0]?.message.queueId ?? '');
      }
      return inserted;
    });
  }
}
