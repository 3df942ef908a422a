-- When the current run of failures of a resource's Salla sync began (NULL while it succeeds): the periodic
-- `notify.sync_check` tells the merchant once a sync has been failing for notify.sync_failing_after_secs.
ALTER TABLE sync_state ADD COLUMN failing_since timestamptz;
