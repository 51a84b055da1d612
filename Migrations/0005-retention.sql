-- Migration 0005: tombstones of expired rows (docs/FORMAT.md, section 20). An expired row's values
-- leave the file; its tombstone keeps the MAC and Merkle leaf that the chain and the tree need, and
-- keyed tags that let a verifier check the expiry against its policy and the legal holds. The
-- signed expiry entry in the log authenticates the tombstones. Append-only.
CREATE TABLE audit_expired (
    seq         INTEGER PRIMARY KEY,
    key_version INTEGER NOT NULL,
    mac         BLOB    NOT NULL,
    leaf        BLOB    NOT NULL,
    recorded_at INTEGER NOT NULL,
    tags        BLOB    NOT NULL,
    expiry_seq  INTEGER NOT NULL
) STRICT;

CREATE TRIGGER audit_expired_no_update BEFORE UPDATE ON audit_expired
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_expired is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER audit_expired_no_delete BEFORE DELETE ON audit_expired
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_expired is append-only: DELETE is not allowed'); END;
