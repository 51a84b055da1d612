-- Migration 0004: signed checkpoints (docs/FORMAT.md, section 16). Each row is a signed
-- statement about the log up to `seq`, plus the frontier (right-edge subtree roots) that lets
-- the next checkpoint extend the Merkle tree without rereading every row. Append-only.
CREATE TABLE audit_checkpoints (
    seq         INTEGER PRIMARY KEY,
    created_at  INTEGER NOT NULL,
    key_version INTEGER NOT NULL,
    public_key  BLOB    NOT NULL CHECK (length(public_key) = 32),
    chain_head  BLOB    NOT NULL CHECK (length(chain_head) = 32),
    merkle_root BLOB    NOT NULL CHECK (length(merkle_root) = 32),
    signature   BLOB    NOT NULL CHECK (length(signature) = 64),
    frontier    BLOB    NOT NULL
) STRICT;

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_checkpoints is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_checkpoints is append-only: DELETE is not allowed'); END;
CREATE TRIGGER audit_checkpoints_next_only BEFORE INSERT ON audit_checkpoints
WHEN NEW.seq <= coalesce((SELECT max(seq) FROM audit_checkpoints), 0)
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_checkpoints is append-only: a checkpoint must cover more rows than the last one'); END;
