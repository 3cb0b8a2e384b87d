-- Up Migration

-- 'dsn' marks a delivery status notification we generated; dsn_of is the queue id of the
-- message it reports on. A DSN is sent from <> and is never itself bounced.
ALTER TABLE messages
  ADD COLUMN kind text NOT NULL DEFAULT 'mail' CHECK (kind IN ('mail', 'dsn')),
  ADD COLUMN dsn_of text;

CREATE INDEX messages_expiring ON messages (expires_at) WHERE completed_at IS NULL;
CREATE INDEX messages_completed ON messages (completed_at) WHERE completed_at IS NOT NULL;

-- last_failure_kind: 'connection' when no server answered for the recipient, 'reply' when one
-- answered 4xx. Only the first kind is retried at once when the next hop comes back.
-- delay_warnings: how many of the configured delay-warning ages have been handled.
-- remote_dsn: the next hop advertised DSN when it accepted the recipient.
ALTER TABLE recipients
  ADD COLUMN last_failure_kind text CHECK (last_failure_kind IN ('connection', 'reply')),
  ADD COLUMN delay_warnings integer NOT NULL DEFAULT 0,
  ADD COLUMN remote_dsn boolean;

CREATE INDEX recipients_unreachable ON recipients (domain)
  WHERE state = 'deferred' AND last_failure_kind = 'connection';

-- Destinations whose next hop did not answer: each is probed (connect and EHLO) with a
-- growing interval until it answers, then its waiting recipients are scheduled at once.
CREATE TABLE destination_probes (
  domain text PRIMARY KEY,
  next_probe_at timestamptz NOT NULL,
  interval_ms integer NOT NULL,
  probe_id uuid,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Down Migration

DROP TABLE destination_probes;
DROP INDEX recipients_unreachable;
ALTER TABLE recipients DROP COLUMN last_failure_kind, DROP COLUMN delay_warnings,
  DROP COLUMN remote_dsn;
DROP INDEX messages_completed;
DROP INDEX messages_expiring;
ALTER TABLE messages DROP COLUMN kind, DROP COLUMN dsn_of;
