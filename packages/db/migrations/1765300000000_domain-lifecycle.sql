-- Up Migration

-- A suspended domain is no longer relayed by ingress, but its waiting mail is still delivered.
-- PostgreSQL 12 and later accept ADD VALUE inside the migration's transaction as long as
-- nothing in that transaction uses the new value.
ALTER TYPE domain_state ADD VALUE IF NOT EXISTS 'suspended';

-- Optional details of a request: an email address to reach the member, and a free-text note.
ALTER TABLE domains
  ADD COLUMN contact text,
  ADD COLUMN note text;

-- Every lifecycle change of a member domain: who made it, when and why. There is no foreign key
-- to domains, so the history of a removed domain is kept. Changes made before this migration
-- have no rows. from_state is NULL for a request; to_state is 'removed' for a removal, which is
-- not a domain_state because a removed domain has no row.
CREATE TABLE domain_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  domain text NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  -- 'admin' for MX_ADMIN_TOKEN, else 'token:<id>' of the stored token.
  actor text NOT NULL,
  action text NOT NULL CHECK (action IN ('request', 'approve', 'suspend', 'remove')),
  from_state text,
  to_state text NOT NULL,
  reason text,
  -- What the change did besides the state, such as the waiting mail a removal bounced.
  detail text
);

CREATE INDEX domain_events_domain ON domain_events (domain, id);

-- Down Migration

DROP TABLE domain_events;
ALTER TABLE domains DROP COLUMN contact, DROP COLUMN note;
-- NOTE: PostgreSQL cannot drop an enum value, so 'suspended' stays in domain_state.
