-- Up Migration

-- Bearer tokens of the admin API besides MX_ADMIN_TOKEN. Only the SHA-256 of the secret is kept;
-- the token handed out is `smx_<id without dashes>_<secret>`, so a request is matched by id and
-- its secret compared in constant time. An 'admin' token can do everything; a 'member' token
-- acts only on its domain, and goes away with the domain.
CREATE TABLE api_tokens (
  id uuid PRIMARY KEY,
  secret_sha256 bytea NOT NULL,
  role text NOT NULL CHECK (role IN ('admin', 'member')),
  domain text REFERENCES domains (name) ON DELETE CASCADE,
  note text,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at timestamptz,
  CHECK ((role = 'member') = (domain IS NOT NULL))
);

CREATE INDEX api_tokens_domain ON api_tokens (domain);

-- Down Migration

DROP TABLE api_tokens;
