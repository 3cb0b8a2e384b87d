-- Up Migration

-- 'change' records a change of a domain's settings (next hops, recipient check, greylisting);
-- from_state and to_state are then both the domain's state, and detail lists old and new values.
ALTER TABLE domain_events DROP CONSTRAINT domain_events_action_check;
ALTER TABLE domain_events ADD CONSTRAINT domain_events_action_check
  CHECK (action IN ('request', 'approve', 'suspend', 'remove', 'change'));

-- Down Migration

DELETE FROM domain_events WHERE action = 'change';
ALTER TABLE domain_events DROP CONSTRAINT domain_events_action_check;
ALTER TABLE domain_events ADD CONSTRAINT domain_events_action_check
  CHECK (action IN ('request', 'approve', 'suspend', 'remove'));
