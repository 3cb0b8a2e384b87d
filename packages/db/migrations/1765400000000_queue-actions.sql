-- Up Migration

-- pending_action: a hold or bounce requested through the admin API. The trigger below applies
-- it as soon as the recipient is not leased to a worker: at once for a waiting recipient, and
-- when the attempt in flight ends for an active one. An attempt that delivers or fails the
-- recipient wins, and the request is dropped.
-- bounce_pending: the recipient was bounced through the admin API and queue-store has not yet
-- queued the DSN about it. The message keeps its bytes until it has.
ALTER TABLE recipients
  ADD COLUMN pending_action text CHECK (pending_action IN ('hold', 'bounce')),
  ADD COLUMN bounce_pending boolean NOT NULL DEFAULT false;

CREATE FUNCTION apply_pending_action() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.state IN ('queued', 'deferred', 'hold') THEN
    IF NEW.pending_action = 'hold' THEN
      NEW.state := 'hold';
    ELSE
      NEW.state := 'failed';
      NEW.completed_at := now();
      NEW.last_reply := '554 5.0.0 Message returned to the sender by an administrator';
      NEW.last_enhanced_code := '5.0.0';
      NEW.remote_mta := NULL;
      NEW.last_failure_kind := NULL;
      NEW.bounce_pending := true;
    END IF;
  END IF;
  NEW.pending_action := NULL;
  RETURN NEW;
END
$$;

CREATE TRIGGER recipients_pending_action BEFORE UPDATE ON recipients FOR EACH ROW
  WHEN (NEW.pending_action IS NOT NULL AND NEW.state <> 'active')
  EXECUTE FUNCTION apply_pending_action();

CREATE INDEX recipients_bounce_pending ON recipients (message_id) WHERE bounce_pending;

-- Filters of the queue API: sender and recipient address (domain case-insensitive), and the
-- delivery counts of the last hour and day.
CREATE INDEX messages_sender ON messages (lower(sender));
CREATE INDEX recipients_address ON recipients (lower(address));
CREATE INDEX delivery_attempts_attempted_at ON delivery_attempts (attempted_at);

-- Down Migration

DROP INDEX delivery_attempts_attempted_at;
DROP INDEX recipients_address;
DROP INDEX messages_sender;
DROP INDEX recipients_bounce_pending;
DROP TRIGGER recipients_pending_action ON recipients;
DROP FUNCTION apply_pending_action();
ALTER TABLE recipients DROP COLUMN pending_action, DROP COLUMN bounce_pending;
