-- Up Migration

-- Per-domain policy that ingress applies at RCPT time, so that we do not accept mail for
-- addresses the primary would reject and then bounce it to forged senders (backscatter).
-- recipient_check: 'none' accepts every local part, 'list' only those in domain_recipients,
-- 'verify' asks the primary. greylist = false skips the greylist check for the domain.
ALTER TABLE domains
  ADD COLUMN recipient_check text NOT NULL DEFAULT 'none'
    CHECK (recipient_check IN ('none', 'list', 'verify')),
  ADD COLUMN local_part_case_sensitive boolean NOT NULL DEFAULT false,
  ADD COLUMN greylist boolean NOT NULL DEFAULT true;

-- Valid recipients of a 'list' domain, as local-part patterns in which '*' matches any run of
-- characters: 'alice', 'sales-*', '*'. Kept as entered; matching decides about case.
CREATE TABLE domain_recipients (
  domain text NOT NULL REFERENCES domains (name) ON DELETE CASCADE,
  local_part text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (domain, local_part)
);

-- Down Migration

DROP TABLE domain_recipients;
ALTER TABLE domains DROP COLUMN recipient_check, DROP COLUMN local_part_case_sensitive,
  DROP COLUMN greylist;
