-- AuditDB PostgreSQL witness (docs/fleet.md; FORMAT.md section 22.6). Run once by the witness
-- owner (not a superuser needed; the owner role must be able to create roles-free objects).
-- Every table is append-only: no role but the owner holds UPDATE, DELETE or TRUNCATE, and
-- triggers refuse them for the owner too. Instances publish through row-level security: a
-- role may insert checkpoints only for the store ids registered to it.
-- PostgreSQL cannot check Ed25519 here; it checks everything else (shapes, ownership,
-- replays, the store of a proof, the consistency proof's hashes). Signatures are checked by
-- the publishing AnchorSink before it sends, and by the fleet auditor for every row.

CREATE SCHEMA IF NOT EXISTS auditdb_witness;

-- Registered out of band by the witness owner: which role publishes for a store.
CREATE TABLE IF NOT EXISTS auditdb_witness.stores (
    store_id      bytea PRIMARY KEY CHECK (length(store_id) = 16),
    publisher     name NOT NULL,
    label         text NOT NULL DEFAULT '',
    registered_at timestamptz NOT NULL DEFAULT now()
);

-- A store's public checkpoint keys, registered out of band; rotation adds a version.
CREATE TABLE IF NOT EXISTS auditdb_witness.keys (
    store_id      bytea NOT NULL REFERENCES auditdb_witness.stores(store_id),
    key_version   bigint NOT NULL CHECK (key_version BETWEEN 1 AND 4294967295),
    public_key    bytea NOT NULL CHECK (length(public_key) = 32),
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, key_version)
);

-- Every publication, as published. Forks, rollbacks, unregistered keys and failing proofs are
-- kept: they are the evidence the auditor reports.
CREATE TABLE IF NOT EXISTS auditdb_witness.checkpoints (
    id             bigserial PRIMARY KEY,
    store_id       bytea NOT NULL REFERENCES auditdb_witness.stores(store_id),
    seq            bigint NOT NULL CHECK (seq >= 1),
    chain_head     bytea NOT NULL CHECK (length(chain_head) = 32),
    merkle_root    bytea NOT NULL CHECK (length(merkle_root) = 32),
    signed_time    bigint NOT NULL,
    key_version    bigint NOT NULL CHECK (key_version BETWEEN 0 AND 4294967295),
    public_key     bytea NOT NULL CHECK (length(public_key) = 32),
    signature      bytea NOT NULL CHECK (length(signature) = 64),
    proof_store_id bytea,
    proof_from     bigint,
    proof          bytea CHECK (proof IS NULL OR (length(proof) % 32 = 0 AND length(proof) <= 128 * 32)),
    -- Set by the witness, whatever the publisher sends:
    proof_valid    boolean,
    key_registered boolean NOT NULL DEFAULT false,
    published_at   timestamptz NOT NULL DEFAULT now(),
    published_by   name NOT NULL DEFAULT current_user,
    UNIQUE (store_id, seq, signature)
);
CREATE INDEX IF NOT EXISTS checkpoints_store_seq ON auditdb_witness.checkpoints (store_id, seq);

-- RFC 9162 2.1.4.2 (FORMAT.md 22.2) over the built-in sha256().
CREATE OR REPLACE FUNCTION auditdb_witness.verify_consistency(m bigint, n bigint, old_root bytea, new_root bytea, proof bytea)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    path bytea[] := '{}';
    i int;
    fn bigint; sn bigint; fr bytea; sr bytea; c bytea;
BEGIN
    IF m < 1 OR n < m OR proof IS NULL OR length(proof) % 32 <> 0 OR length(proof) > 128 * 32 THEN RETURN false; END IF;
    IF m = n THEN RETURN length(proof) = 0 AND old_root = new_root; END IF;
    IF length(proof) = 0 THEN RETURN false; END IF;
    IF m & (m - 1) = 0 THEN path := array_append(path, old_root); END IF;
    FOR i IN 0 .. length(proof) / 32 - 1 LOOP
        path := array_append(path, substring(proof FROM i * 32 + 1 FOR 32));
    END LOOP;
    fn := m - 1; sn := n - 1;
    WHILE fn & 1 = 1 LOOP fn := fn >> 1; sn := sn >> 1; END LOOP;
    fr := path[1]; sr := path[1];
    FOR i IN 2 .. coalesce(array_length(path, 1), 0) LOOP
        c := path[i];
        IF sn = 0 THEN RETURN false; END IF;
        IF fn & 1 = 1 OR fn = sn THEN
            fr := sha256('\x01'::bytea || c || fr);
            sr := sha256('\x01'::bytea || c || sr);
            IF fn & 1 = 0 THEN
                WHILE fn & 1 = 0 AND fn <> 0 LOOP fn := fn >> 1; sn := sn >> 1; END LOOP;
            END IF;
        ELSE
            sr := sha256('\x01'::bytea || sr || c);
        END IF;
        fn := fn >> 1; sn := sn >> 1;
    END LOOP;
    RETURN sn = 0 AND fr = old_root AND sr = new_root;
END $$;

-- Checks a publication; sets the witness's own columns; skips an identical re-publication.
CREATE OR REPLACE FUNCTION auditdb_witness.before_publish() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = auditdb_witness, pg_temp AS $$
DECLARE
    earlier record;
    any_earlier boolean;
BEGIN
    -- A publisher's row for a store not registered to it is refused here, before anything else:
    -- row-level security would refuse it too, but only after this trigger, whose other checks
    -- (a replay, a missing proof) would tell the role whether that store has published.
    IF pg_has_role(session_user, 'auditdb_publisher', 'MEMBER')
       AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = session_user)
       AND NOT EXISTS (SELECT 1 FROM stores WHERE store_id = NEW.store_id AND publisher = session_user) THEN
        RAISE EXCEPTION 'new row violates row-level security: role % may not publish checkpoints of store %', session_user, encode(NEW.store_id, 'hex')
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    NEW.published_at := now();
    NEW.published_by := session_user;
    IF EXISTS (SELECT 1 FROM checkpoints WHERE store_id = NEW.store_id AND seq = NEW.seq AND signature = NEW.signature) THEN
        RETURN NULL;  -- a replay of a publication the witness holds: nothing to add
    END IF;
    IF (NEW.proof_from IS NULL) <> (NEW.proof IS NULL) OR (NEW.proof_from IS NULL) <> (NEW.proof_store_id IS NULL) THEN
        RAISE EXCEPTION 'malformed publication: proof_store_id, proof_from and proof go together'
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT EXISTS (SELECT 1 FROM checkpoints WHERE store_id = NEW.store_id) INTO any_earlier;
    IF NEW.proof_from IS NULL THEN
        IF any_earlier THEN
            RAISE EXCEPTION 'publication without a consistency proof: the witness already holds checkpoints of this store; send the proof from one of them'
                USING ERRCODE = 'check_violation';
        END IF;
        NEW.proof_valid := NULL;
    ELSE
        IF NEW.proof_store_id <> NEW.store_id THEN
            RAISE EXCEPTION 'the consistency proof is for another store than the checkpoint'
                USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.proof_from >= NEW.seq THEN
            RAISE EXCEPTION 'the consistency proof must start below the checkpoint''s seq'
                USING ERRCODE = 'check_violation';
        END IF;
        NEW.proof_valid := false;
        any_earlier := false;
        FOR earlier IN SELECT merkle_root FROM checkpoints WHERE store_id = NEW.store_id AND seq = NEW.proof_from LOOP
            any_earlier := true;
            IF verify_consistency(NEW.proof_from, NEW.seq, earlier.merkle_root, NEW.merkle_root, NEW.proof) THEN
                NEW.proof_valid := true;
            END IF;
        END LOOP;
        IF NOT any_earlier THEN
            RAISE EXCEPTION 'the consistency proof starts at a seq this store never published here'
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    NEW.key_registered := EXISTS (SELECT 1 FROM keys WHERE store_id = NEW.store_id AND key_version = NEW.key_version
                                  AND public_key = NEW.public_key);
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION auditdb_witness.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the AuditDB witness table % is append-only: % is refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['stores', 'keys', 'checkpoints'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON auditdb_witness.%I', t || '_no_change', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON auditdb_witness.%I FOR EACH ROW EXECUTE FUNCTION auditdb_witness.refuse_change()', t || '_no_change', t);
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON auditdb_witness.%I', t || '_no_truncate', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON auditdb_witness.%I FOR EACH STATEMENT EXECUTE FUNCTION auditdb_witness.refuse_change()', t || '_no_truncate', t);
    END LOOP;
END $$;
DROP TRIGGER IF EXISTS checkpoints_publish ON auditdb_witness.checkpoints;
CREATE TRIGGER checkpoints_publish BEFORE INSERT ON auditdb_witness.checkpoints
    FOR EACH ROW EXECUTE FUNCTION auditdb_witness.before_publish();

-- Publishers (one login role per instance, member of auditdb_publisher) insert and read their
-- own store's rows only; auditors read everything.
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'auditdb_publisher') THEN CREATE ROLE auditdb_publisher NOLOGIN; END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'auditdb_auditor') THEN CREATE ROLE auditdb_auditor NOLOGIN; END IF;
END $$;
REVOKE ALL ON ALL TABLES IN SCHEMA auditdb_witness FROM PUBLIC;
GRANT USAGE ON SCHEMA auditdb_witness TO auditdb_publisher, auditdb_auditor;
GRANT SELECT ON auditdb_witness.stores, auditdb_witness.keys TO auditdb_publisher;
GRANT SELECT, INSERT ON auditdb_witness.checkpoints TO auditdb_publisher;
GRANT USAGE ON SEQUENCE auditdb_witness.checkpoints_id_seq TO auditdb_publisher;
GRANT SELECT ON ALL TABLES IN SCHEMA auditdb_witness TO auditdb_auditor;

ALTER TABLE auditdb_witness.checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE auditdb_witness.stores ENABLE ROW LEVEL SECURITY;
ALTER TABLE auditdb_witness.keys ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS publish_own ON auditdb_witness.checkpoints;
CREATE POLICY publish_own ON auditdb_witness.checkpoints FOR INSERT TO auditdb_publisher
    WITH CHECK (EXISTS (SELECT 1 FROM auditdb_witness.stores s WHERE s.store_id = checkpoints.store_id AND s.publisher = session_user));
DROP POLICY IF EXISTS read_own ON auditdb_witness.checkpoints;
CREATE POLICY read_own ON auditdb_witness.checkpoints FOR SELECT TO auditdb_publisher
    USING (EXISTS (SELECT 1 FROM auditdb_witness.stores s WHERE s.store_id = checkpoints.store_id AND s.publisher = session_user));
DROP POLICY IF EXISTS read_own ON auditdb_witness.stores;
CREATE POLICY read_own ON auditdb_witness.stores FOR SELECT TO auditdb_publisher USING (publisher = session_user);
DROP POLICY IF EXISTS read_own ON auditdb_witness.keys;
CREATE POLICY read_own ON auditdb_witness.keys FOR SELECT TO auditdb_publisher
    USING (EXISTS (SELECT 1 FROM auditdb_witness.stores s WHERE s.store_id = keys.store_id AND s.publisher = session_user));
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['stores', 'keys', 'checkpoints'] LOOP
        EXECUTE format('DROP POLICY IF EXISTS audit_all ON auditdb_witness.%I', t);
        EXECUTE format('CREATE POLICY audit_all ON auditdb_witness.%I FOR SELECT TO auditdb_auditor USING (true)', t);
    END LOOP;
END $$;
