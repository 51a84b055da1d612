-- Migration 0006: erasure (docs/FORMAT.md, section 21). Rows written from now on are format 2:
-- each carries in `seals` a random seed from which its field nonces derive, instead of nonces
-- derived from the HMAC key. Erasing a field replaces its value by NULL and its nonce by its
-- commitment in `seals`: the MAC and the Merkle leaf still verify, and nothing is left to test a
-- guess against, even with every key. Format-1 rows (written before this migration) keep `seals`
-- NULL and verify exactly as before. The signed `auditdb.erasure` entries account for every
-- erased field.
ALTER TABLE audit_entries ADD COLUMN seals BLOB;
