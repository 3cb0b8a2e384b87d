/**
 * Group commit of spool writes. A message that arrives while no write is in flight is stored
 * at once; messages that arrive during a write are stored together by the next one, in one
 * statement and one commit. This adds no wait to a lone message and saves a round trip and a
 * WAL flush per message under load.
 */
import { insertMessages, type NewMessage, type Pool } from '@secondary-mx/db';

/** Most messages in one statement, which bounds its size and the work lost to one error. */
const MAX_BATCH = 64;

interface PendingWrite {
  message: NewMessage;
  resolve: (inserted: boolean) => void;
  reject: (error: unknown) => void;
}

export class SpoolWriter {
  private readonly pending: PendingWrite[] = [];
  private writing = false;

  constructor(private readonly pool: Pool) {}

  /** Stores the message; resolves false when its queue id was stored before. */
  write(message: NewMessage): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.pending.push({ message, resolve, reject });
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

  private async writeBatch(batch: PendingWrite[]): Promise<void> {
    try {
      const inserted = await insertMessages(
        this.pool,
        batch.map((write) => write.message),
      );
      for (const write of batch) {
        write.resolve(inserted.has(write.message.queueId));
      }
      return;
    } catch (error) {
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
}
