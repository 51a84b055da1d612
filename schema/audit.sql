-- AuditDB store schema (format version 1): the canonical text of the current schema.
-- Migrations/ must produce exactly these objects (a test compares them), and the integrity
-- scanner compares every store's sqlite_schema against them: an edited or dropped table,
-- trigger or view is reported as schema tampering.
--
-- Triggers make every table append-only for any SQLite client. They are a seat belt: the
-- proof is the per-row MAC chain (docs/FORMAT.md), which still holds if triggers are removed.

-- One row: who this store is. `mac` = HMAC over the header (docs/FORMAT.md, "Store header").
CREATE TABLE audit_store (
    singleton      INTEGER PRIMARY KEY CHECK (singleton = 1),
    store_id       BLOB    NOT NULL CHECK (length(store_id) = 16),
    created_at     INTEGER NOT NULL,
    format_version INTEGER NOT NULL,
    key_version    INTEGER NOT NULL,
    mac            BLOB    NOT NULL CHECK (length(mac) = 32)
) STRICT;

-- The audit log. `seq` is gapless from 1; `mac` = row tag (16 bytes) || link tag (16 bytes).
-- actor, source and details are nullable so that a later erasure can withhold them; the MAC
-- covers hash commitments of those three, never their raw bytes (docs/FORMAT.md).
CREATE TABLE audit_entries (
    seq            INTEGER PRIMARY KEY,
    recorded_at    INTEGER NOT NULL,
    occurred_at    INTEGER,
    tenant         TEXT,
    actor          TEXT,
    action         TEXT    NOT NULL,
    resource_type  TEXT,
    resource_id    TEXT,
    outcome        INTEGER NOT NULL,
    severity       INTEGER NOT NULL,
    correlation_id TEXT,
    source         TEXT,
    details        TEXT,
    origin         INTEGER NOT NULL,
    origin_ref     INTEGER,
    format_version INTEGER NOT NULL,
    key_version    INTEGER NOT NULL,
    mac            BLOB    NOT NULL
) STRICT;

-- Which key versions have signed rows, and from which seq. A cache that lets `open` name a
-- missing key version at once; verification never trusts it (it checks every row).
CREATE TABLE audit_key_versions (
    key_version INTEGER PRIMARY KEY,
    first_seq   INTEGER NOT NULL
) STRICT;

-- Re-attestations of rows signed under a key version later declared compromised
-- (docs/FORMAT.md, "Attestations"). Append-only like the log itself.
CREATE TABLE audit_attestations (
    seq             INTEGER NOT NULL,
    key_version     INTEGER NOT NULL,
    declaration_seq INTEGER NOT NULL,
    mac             BLOB    NOT NULL,
    PRIMARY KEY (seq, key_version)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER audit_store_no_update BEFORE UPDATE ON audit_store
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_store is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER audit_store_no_delete BEFORE DELETE ON audit_store
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_store is append-only: DELETE is not allowed'); END;
CREATE TRIGGER audit_store_no_overwrite BEFORE INSERT ON audit_store
WHEN EXISTS (SELECT 1 FROM audit_store)
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_store is append-only: the store header cannot be replaced'); END;

CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'AuditDB: the audit log is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'AuditDB: the audit log is append-only: DELETE is not allowed'); END;
-- Also stops INSERT OR REPLACE / REPLACE INTO (which would delete the old row without firing
-- DELETE triggers) and rows that skip or reuse a seq.
CREATE TRIGGER audit_entries_next_seq_only BEFORE INSERT ON audit_entries
WHEN NEW.seq IS NULL OR NEW.seq <> coalesce((SELECT max(seq) FROM audit_entries), 0) + 1
BEGIN SELECT RAISE(ABORT, 'AuditDB: the audit log is append-only: a new row must take the next seq (no overwrite, no gap)'); END;

CREATE TRIGGER audit_key_versions_no_update BEFORE UPDATE ON audit_key_versions
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_key_versions is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER audit_key_versions_no_delete BEFORE DELETE ON audit_key_versions
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_key_versions is append-only: DELETE is not allowed'); END;
CREATE TRIGGER audit_key_versions_no_overwrite BEFORE INSERT ON audit_key_versions
WHEN EXISTS (SELECT 1 FROM audit_key_versions WHERE key_version = NEW.key_version)
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_key_versions is append-only: a row cannot be replaced'); END;

CREATE TRIGGER audit_attestations_no_update BEFORE UPDATE ON audit_attestations
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_attestations is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER audit_attestations_no_delete BEFORE DELETE ON audit_attestations
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_attestations is append-only: DELETE is not allowed'); END;
CREATE TRIGGER audit_attestations_no_overwrite BEFORE INSERT ON audit_attestations
WHEN EXISTS (SELECT 1 FROM audit_attestations WHERE seq = NEW.seq AND key_version = NEW.key_version)
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_attestations is append-only: a row cannot be replaced'); END;

-- The rows a back-signing run wrote, by the seq of its run entry (partial: engine-recorded rows,
-- whose origin_ref is NULL, are not indexed, so appends do not pay for it).
CREATE INDEX audit_entries_origin_ref ON audit_entries(origin_ref) WHERE origin_ref IS NOT NULL;

-- Query indexes (migration 0003). Actor and resource ids are bucketed by seq >> 14 so that
-- appends only touch the newest bucket's part of the index (docs/performance.md); a lookup
-- seeks once per bucket. Within a bucket and key the entries are in seq order, with the filter
-- columns after the seq (migration 0011), so that a filtered page reads only the rows that match;
-- the seq is the key expression (seq >> 0), read as stored (FORMAT.md step 7).
CREATE INDEX audit_entries_actor ON audit_entries((seq >> 14), actor, (seq >> 0), outcome, severity, action) WHERE actor IS NOT NULL;
CREATE INDEX audit_entries_resource ON audit_entries((seq >> 14), resource_id, (seq >> 0), outcome, severity, action) WHERE resource_id IS NOT NULL;
CREATE INDEX audit_entries_tenant_time ON audit_entries(tenant, recorded_at) WHERE tenant IS NOT NULL;
CREATE INDEX audit_entries_recorded_at ON audit_entries(recorded_at);
-- AuditDB's own entries (actions auditdb.*), e.g. to find the newest scan record at once.
CREATE INDEX audit_entries_engine ON audit_entries(action) WHERE action >= 'auditdb.' AND action < 'auditdb/';
-- A tenant's rows in seq order, so that a tenant's newest-first page costs what its oldest-first
-- page does (migration 0008), with the filter columns after the seq, so that a filtered page
-- reads only the rows that match (migration 0010). The seq is the key expression (seq >> 0): SQLite
-- reads it as stored, where a plain seq key would be answered from the rowid (FORMAT.md step 7).
CREATE INDEX audit_entries_tenant_seq ON audit_entries(tenant, (seq >> 0), outcome, severity, action) WHERE tenant IS NOT NULL;

-- For people reading the store with the sqlite3 shell: names instead of codes, ISO-8601 times.
CREATE VIEW audit_log AS
SELECT seq,
       strftime('%Y-%m-%dT%H:%M:%fZ', recorded_at / 1000000.0, 'unixepoch') AS recorded_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', occurred_at / 1000000.0, 'unixepoch') AS occurred_at,
       tenant, actor, action, resource_type, resource_id,
       CASE outcome WHEN 0 THEN 'success' WHEN 1 THEN 'failure' WHEN 2 THEN 'denied' WHEN 3 THEN 'error' END AS outcome,
       CASE severity WHEN 0 THEN 'info' WHEN 1 THEN 'notice' WHEN 2 THEN 'warning' WHEN 3 THEN 'critical' END AS severity,
       correlation_id, source, details,
       CASE origin WHEN 0 THEN 'recorded' WHEN 1 THEN 'back-signed' END AS origin,
       key_version
FROM audit_entries;

-- Every pass of the integrity scanner, recorded as a signed log entry (action auditdb.scan).
CREATE VIEW audit_scan_history AS
SELECT seq,
       strftime('%Y-%m-%dT%H:%M:%fZ', recorded_at / 1000000.0, 'unixepoch') AS recorded_at,
       json_extract(details, '$.mode') AS mode,
       json_extract(details, '$.fromSeq') AS from_seq,
       json_extract(details, '$.throughSeq') AS through_seq,
       json_extract(details, '$.rowsChecked') AS rows_checked,
       json_extract(details, '$.durationMicros') AS duration_us,
       json_extract(details, '$.result') AS result,
       json_extract(details, '$.findings') AS findings,
       json_extract(details, '$.firstFinding') AS first_finding
FROM audit_entries
WHERE action = 'auditdb.scan' AND origin = 0;

-- Signed checkpoints (migration 0004; docs/FORMAT.md, section 16): append-only.
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

-- Tombstones of expired rows (migration 0005; docs/FORMAT.md, section 20): append-only.
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

-- Migration 0006 (docs/FORMAT.md, section 21): the seals of format-2 rows — a random seed per row
-- from which its field nonces derive, or, once a field is erased, its commitment in their place.
-- Added by ALTER TABLE so that a migrated store and a new one hold the same CREATE TABLE text.
ALTER TABLE audit_entries ADD COLUMN seals BLOB;

-- Migration 0009 (docs/FORMAT.md, section 24): every seq whose recorded_at is lower than the
-- recorded_at of the seq before it (rows and tombstones). Derived data; append-only.
CREATE TABLE audit_time_breaks (
    seq INTEGER PRIMARY KEY
) STRICT;

CREATE TRIGGER audit_time_breaks_no_update BEFORE UPDATE ON audit_time_breaks
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_time_breaks is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER audit_time_breaks_no_delete BEFORE DELETE ON audit_time_breaks
BEGIN SELECT RAISE(ABORT, 'AuditDB: audit_time_breaks is append-only: DELETE is not allowed'); END;
