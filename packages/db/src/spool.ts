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
  const inserted = await insertMessages(db, [message]);
  return inserted.has(message.queueId);
}

/**
 * Stores several messages and all their recipients in one statement, so one commit covers
 * them all. A queue id that is already stored is skipped. Returns the queue ids this call
 * inserted.
 */
export async function insertMessages(db: Queryable, messages: NewMessage[]): Promise<Set<string>> {
  if (messages.length === 0) {
    return new Set();
  }
  const result = await db.query<{ id: string }>(
    `WITH input AS (
       SELECT i.id, i.body, i.meta
       FROM unnest($1::text[], $2::bytea[], $3::jsonb[]) AS i(id, body, meta)
     ),
     inserted AS (
       INSERT INTO messages (id, sender, size, body, ret, envid, body_type, smtp_utf8,
                             client_address, client_name, helo_name, received_at, expires_at,
                             kind, dsn_of)
       SELECT id, meta->>'sender', length(body), body, meta->>'ret', meta->>'envid',
              meta->>'bodyType', (meta->>'smtpUtf8')::boolean, meta->>'clientAddress',
              meta->>'clientName', meta->>'heloName', (meta->>'receivedAt')::timestamptz,
              (meta->>'expiresAt')::timestamptz, meta->>'kind', meta->>'dsnOf'
       FROM input
       ON CONFLICT (id) DO NOTHING
       RETURNING id
     ),
     recipients_inserted AS (
       INSERT INTO recipients (message_id, address, domain, notify, orcpt)
       SELECT input.id, r.address, r.domain, r.notify, r.orcpt
       FROM inserted JOIN input ON input.id = inserted.id,
            jsonb_to_recordset(input.meta->'recipients')
              AS r(address text, domain text, notify text[], orcpt text)
     )
     SELECT id FROM inserted`,
    [
      messages.map((message) => message.queueId),
      messages.map((message) => message.body),
      messages.map((message) => JSON.stringify(messageFields(message))),
    ],
  );
  return new Set(result.rows.map((row) => row.id));
}

/** Builds the JSON of a message's columns besides its id and bytes, as insertMessages reads it. */
function messageFields(message: NewMessage) {
  return {
    sender: message.sender,
    ret: message.ret ?? null,
    envid: message.envid ?? null,
    bodyType: message.bodyType,
    smtpUtf8: message.smtpUtf8,
    clientAddress: message.clientAddress,
    clientName: message.clientName ?? null,
    heloName: message.heloName ?? null,
    receivedAt: message.receivedAt.toISOString(),
    expiresAt: message.expiresAt.toISOString(),
    kind: message.kind ?? 'mail',
    dsnOf: message.dsnOf ?? null,
    recipients: message.recipients.map((recipient) => ({
      address: recipient.envelope.address,
      domain: recipient.domain,
      notify: recipient.envelope.notify ?? null,
      orcpt: recipient.envelope.orcpt ?? null,
    })),
  };
}
