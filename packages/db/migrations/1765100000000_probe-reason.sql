-- Up Migration

-- Why the destination is unreachable, from the delivery attempt that found it so. Recipients
-- deferred without an attempt while it is probed report this reason in delay warnings and
-- bounces, as Postfix reports "delivery temporarily suspended" with the original reason.
ALTER TABLE destination_probes
  ADD COLUMN last_reply text,
  ADD COLUMN remote_mta text;

-- Down Migration

ALTER TABLE destination_probes DROP COLUMN last_reply, DROP COLUMN remote_mta;
