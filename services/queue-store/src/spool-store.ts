/**
 * Serves spool.store: commits a received message and its recipients to PostgreSQL, then
 * replies. Ingress answers 250 only on an `ok` reply, so a reply is sent only after COMMIT.
 */
import { parseMailbox } from '@secondary-mx/address';
import {
  decodeFrame,
  type SpoolStoreReply,
  SpoolStoreRequestSchema,
} from '@secondary-mx/contracts';
import type { Pool } from '@secondary-mx/db';
import type { Logger } from '@secondary-mx/logger';
import { DeadlinePassedError, SpoolWriter } from './spool-writer.ts';

export interface SpoolStoreOptions {
  pool: Pool;
  logger: Logger;
  queueLifetimeMs: number;
  /**
   * Called after each commit, so the scheduler can lease the new recipients at once. `inserted`
   * is false when the queue id had been stored before.
   */
  onStored: (inserted: boolean) => void;
}

function reply(body: SpoolStoreReply): Buffer {
  return Buffer.from(JSON.stringify(body));
}

export function createSpoolStoreHandler(options: SpoolStoreOptions) {
  const { logger } = options;
  const writer = new SpoolWriter(options.pool);
  return async (content: Buffer): Promise<Buffer> => {
    let frame: ReturnType<typeof decodeFrame>;
    try {
      frame = decodeFrame(content);
    } catch (error) {
      logger.error({ err: error }, 'spool request is not a valid frame');
      return reply({ ok: false, error: 'invalid frame' });
    }
    const parsed = SpoolStoreRequestSchema.safeParse(frame.header);
    if (!parsed.success) {
      logger.error({ issues: parsed.error.issues }, 'spool request header is invalid');
      return reply({ ok: false, error: 'invalid request' });
    }
    const request = parsed.data;
    const log = logger.child({ queueId: request.queueId, session: request.session });
    if (Date.now() > request.deadline) {
      // Ingress has already answered 451; storing now would only make a duplicate.
      log.warn('spool request arrived after its deadline, dropped');
      return reply({ ok: false, error: 'deadline passed' });
    }
    let recipients: { envelope: (typeof request.recipients)[number]; domain: string }[];
    try {
      recipients = request.recipients.map((envelope) => ({
        envelope,
        domain: parseMailbox(envelope.address).domain,
      }));
    } catch (error) {
      log.error({ err: error }, 'spool request has an invalid recipient');
      return reply({ ok: false, error: 'invalid recipient' });
    }
    const receivedAt = new Date(request.receivedAt);
    let inserted: boolean;
    try {
      inserted = await writer.write(
        {
          queueId: request.queueId,
          sender: request.sender,
          recipients,
          body: frame.payload,
          ret: request.ret,
          envid: request.envid,
          bodyType: request.bodyType,
          smtpUtf8: request.smtpUtf8,
          clientAddress: request.clientAddress,
          clientName: request.clientName,
          heloName: request.heloName,
          receivedAt,
          expiresAt: new Date(receivedAt.getTime() + options.queueLifetimeMs),
        },
        request.deadline,
      );
      log.info(
        { size: frame.payload.length, recipients: recipients.length, duplicate: !inserted },
        'message stored',
      );
    } catch (error) {
      if (error instanceof DeadlinePassedError) {
        // Ingress answers 451 at the deadline, so the sender sends the message again.
        log.warn('storing the message took until its deadline, rolled back');
        return reply({ ok: false, error: 'deadline passed' });
      }
      log.error({ err: error }, 'storing the message failed');
      return reply({ ok: false, error: 'database error' });
    }
    options.onStored(inserted);
    return reply({ ok: true, queueId: request.queueId });
  };
}
