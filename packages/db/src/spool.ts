import type { EnvelopeRecipient } from '@secondary-mx/contracts';
import type { Queryable } from './connection.ts';

export interface NewMessage {
  queueId: string;
  sender: string;
  recipients: { envelope: EnvelopeRecipient; domain: string }[];
  body: Buffer;
  ret?: 'FULL' | 'HDRS' | undefined;
  envid?: string | undefined;
  bodyType: string;
  smtpUtf8: boolean;
  clientAddress: string;
  clientName?: string | undefined;
  heloName?: string | undefined;
  receivedAt: Date;
  expiresAt: Date;
  /** 'dsn' for a delivery status notification we generated; defaults to 'mail'. */
  kind?: 'mail' | 'dsn';
  /** For a DSN: the queue id of the message it reports on. */
  dsnOf?: string | undefined;
}

/**
 * Stores a message and its recipients in one statement, so one commit covers both. Storing the
 * same queue id again is a no-op, which makes a redelivered spool request harmless. Returns
 * whether this call inserted the message.
 */
export async function insertMessage(db: Queryable, message: NewMessage): Promise<boolean> {
  const result = await db.query(
    `WITH inserted AS (
       INSERT INTO messages (id, sender, size, body, ret, envid, body_type, smtp_utf8,
                             client_address, client_name, helo_name, received_at, expires_at,
                             kind, dsn_of)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $15, $16)
       ON CONFLICT (id) DO NOTHING
       RETURNING id
     )
     INSERT INTO recipients (message_id, address, domain, notify, orcpt)
     SELECT inserted.id, r.address, r.domain, r.notify, r.orcpt
     FROM inserted,
          jsonb_to_recordset($14::jsonb) AS r(address text, domain text, notify text[], orcpt text)`,
    [
      message.queueId,
      message.sender,
      message.body.length,
      message.body,
      message.ret ?? null,
      message.envid ?? null,
      message.bodyType,
      message.smtpUtf8,
      message.clientAddress,
      message.clientName ?? null,
      message.heloName ?? null,
      message.receivedAt,
      message.expiresAt,
      JSON.stringify(
        message.recipients.map((recipient) => ({
          address: recipient.envelope.address,
          domain: recipient.domain,
          notify: recipient.envelope.notify ?? null,
          orcpt: recipient.envelope.orcpt ?? null,
        })),
      ),
      message.kind ?? 'mail',
      message.dsnOf ?? null,
    ],
  );
  return (result.rowCount ?? 0) > 0;
}
