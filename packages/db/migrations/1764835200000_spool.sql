-- Up Migration

CREATE TYPE recipient_state AS ENUM (
  'queued', 'active', 'deferred', 'hold', 'delivered', 'failed', 'expired'
);

CREATE TYPE domain_state AS ENUM ('pending', 'approved');

-- Member domains we relay for once approved.
CREATE TABLE domains (
  name text PRIMARY KEY,
  member_number text NOT NULL,
  state domain_state NOT NULL DEFAULT 'pending',
  -- Next hops set by an administrator ("host" or "host:port"); empty means use DNS.
  primary_hosts text[] NOT NULL DEFAULT '{}',
  requested_at timestamptz NOT NULL DEFAULT now(),
  approved_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per received message. body holds the bytes exactly as received with our Received:
-- line prepended; it becomes NULL once every recipient is final.
CREATE TABLE messages (
  id text PRIMARY KEY,
  sender text NOT NULL,
  size integer NOT NULL,
  body bytea,
  ret text CHECK (ret IN ('FULL', 'HDRS')),
  envid text,
  body_type text NOT NULL DEFAULT '7BIT',
  smtp_utf8 boolean NOT NULL DEFAULT false,
  client_address text NOT NULL,
  client_name text,
  helo_name text,
  received_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  completed_at timestamptz
);

CREATE INDEX messages_received_at ON messages (received_at);

CREATE TABLE recipients (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  message_id text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
  address text NOT NULL,
  -- Lower-case A-label domain of address, the key for next hops and flushes.
  domain text NOT NULL,
  notify text[],
  orcpt text,
  state recipient_state NOT NULL DEFAULT 'queued',
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  lease_id uuid,
  lease_until timestamptz,
  last_attempt_at timestamptz,
  last_reply text,
  last_enhanced_code text,
  remote_mta text,
  completed_at timestamptz
);

CREATE INDEX recipients_due ON recipients (next_attempt_at, id)
  WHERE state IN ('queued', 'deferred');
CREATE INDEX recipients_leased ON recipients (lease_until) WHERE state = 'active';
CREATE INDEX recipients_message ON recipients (message_id);
CREATE INDEX recipients_domain_state ON recipients (domain, state);

-- Every delivery attempt of every recipient, for the queue API.
CREATE TABLE delivery_attempts (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  recipient_id bigint NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
  attempted_at timestamptz NOT NULL,
  status text NOT NULL,
  reply text,
  remote_mta text
);

CREATE INDEX delivery_attempts_recipient ON delivery_attempts (recipient_id);

-- Down Migration

DROP TABLE delivery_attempts;
DROP TABLE recipients;
DROP TABLE messages;
DROP TABLE domains;
DROP TYPE domain_state;
DROP TYPE recipient_state;
