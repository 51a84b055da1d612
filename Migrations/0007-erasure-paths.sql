-- Migration 0007: erasing JSON paths inside `details` (docs/FORMAT.md, section 21.7). A row whose
-- details had members erased keeps seals bit 3 (0x08, with bit 2) and holds, in `details`, the
-- erased paths and the rest of details: {"erased":[PATH,...],"residual":{...}}; the signed
-- `auditdb.erasure` entry records a hash of that text. The schema does not change. This migration
-- marks the store, so that an AuditDB without section 21.7 refuses to open it ("written by a newer
-- AuditDB") instead of reporting such rows as malformed.
SELECT 1;
