-- Migration 0002: find the rows a back-signing (adoption) run wrote, by its run entry's seq.
-- Resuming an interrupted run counts them; verifiers list them. Partial: rows recorded by the
-- engine have origin_ref NULL and are not in the index, so appends do not pay for it.
CREATE INDEX audit_entries_origin_ref ON audit_entries(origin_ref) WHERE origin_ref IS NOT NULL;
