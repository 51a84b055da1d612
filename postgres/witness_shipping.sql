-- AuditDB central shipping (docs/fleet.md, "Shipping"). Installed after witness.sql (file names
-- are applied in sorted order) by `auditdb-fleet install-schema`, as the witness owner.
-- Instances ship their stores' verified entries into auditdb_ship.entries, in batches recorded in
-- auditdb_ship.batches; each batch names a checkpoint published to auditdb_witness.checkpoints and
-- holds the consistency proof from its last seq to it, so that `auditdb-fleet verify-shipped`
-- proves every shipped row against the witness with public keys only.
-- Append-only like the witness: no role but the owner holds UPDATE, DELETE or TRUNCATE, and
-- triggers refuse them for the owner too, but for the erasure of shipped fields, which only the
-- batch trigger applies (apply_lifecycle). An instance may insert entries only for the stores
-- registered to its role in auditdb_witness.stores (a statement trigger checks every inserted row,
-- once per statement, so that instances COPY straight into the table) and reads none of them;
-- row-level security lets it record and read only its own stores' batches.
--
-- Upgrading a central database made by an earlier version: run this file again (as
-- `auditdb-fleet install-schema` does). Every statement is idempotent; it turns row-level security
-- off on entries, drops its three policies there, revokes the instances' SELECT on entries and
-- installs the statement trigger. Shippers of the earlier version (COPY into a temporary table,
-- then INSERT … SELECT) keep working: their INSERT is checked by the same trigger.

CREATE SCHEMA IF NOT EXISTS auditdb_ship;

-- One row per log position of a store. A withheld or erased field has its commitment only; an
-- expired row (FORMAT.md section 20) has only its tombstone, leaf and recorded time.
CREATE TABLE IF NOT EXISTS auditdb_ship.entries (
    store_id           bytea NOT NULL,
    seq                bigint NOT NULL CHECK (seq >= 1),
    recorded_at        timestamptz NOT NULL,
    occurred_at        timestamptz,
    tenant             text,
    actor              text,
    action             text,
    resource_type      text,
    resource_id        text,
    outcome            smallint,
    severity           smallint,
    correlation_id     text,
    source             text,
    details            text,
    origin             smallint,
    origin_ref         bigint,
    format_version     smallint,
    key_version        bigint,
    -- The nonce of a shown value (NULL otherwise) and the commitment of every field (FORMAT.md 7, 21.1).
    actor_nonce        bytea,
    source_nonce       bytea,
    details_nonce      bytea,
    actor_commitment   bytea,
    source_commitment  bytea,
    details_commitment bytea,
    -- Fields shipped as their commitment only: bit 1 actor, 2 source, 4 details.
    withheld           smallint NOT NULL DEFAULT 0 CHECK (withheld BETWEEN 0 AND 7),
    erased             smallint NOT NULL DEFAULT 0 CHECK (erased BETWEEN 0 AND 7),
    leaf               bytea NOT NULL CHECK (length(leaf) = 32),
    -- An expired row: ENC_TOMB (FORMAT.md 20.1) and the seq of its expiry entry.
    tombstone          bytea CHECK (tombstone IS NULL OR length(tombstone) = 164),
    expiry_seq         bigint,
    PRIMARY KEY (store_id, seq)
);
-- The tombstone of a row shipped whole that expired afterwards (FORMAT.md 22.7): its expiry
-- entry's digest covers it, so it is shipped in the batch that holds the entry. The row in
-- entries keeps its values (only erasure changes a shipped row; see docs/fleet.md).
CREATE TABLE IF NOT EXISTS auditdb_ship.tombstones (
    store_id   bytea NOT NULL,
    seq        bigint NOT NULL CHECK (seq >= 1),
    tombstone  bytea NOT NULL CHECK (length(tombstone) = 164),
    expiry_seq bigint NOT NULL,
    PRIMARY KEY (store_id, seq)
);

-- The central queries (docs/fleet.md): by tenant, actor or action over time, and by time alone.
CREATE INDEX IF NOT EXISTS entries_tenant_time ON auditdb_ship.entries (tenant, recorded_at);
CREATE INDEX IF NOT EXISTS entries_actor_time ON auditdb_ship.entries (actor, recorded_at);
CREATE INDEX IF NOT EXISTS entries_action_time ON auditdb_ship.entries (action, recorded_at);
CREATE INDEX IF NOT EXISTS entries_time ON auditdb_ship.entries USING brin (recorded_at);

-- One row per shipped batch: the high-water mark of a store is its highest last_seq.
CREATE TABLE IF NOT EXISTS auditdb_ship.batches (
    store_id             bytea NOT NULL REFERENCES auditdb_witness.stores(store_id),
    first_seq            bigint NOT NULL CHECK (first_seq >= 1),
    last_seq             bigint NOT NULL,
    checkpoint_seq       bigint NOT NULL,
    checkpoint_signature bytea NOT NULL CHECK (length(checkpoint_signature) = 64),
    proof                bytea NOT NULL CHECK (length(proof) % 32 = 0 AND length(proof) <= 128 * 32),
    shipped_at           timestamptz NOT NULL DEFAULT now(),
    shipped_by           name NOT NULL DEFAULT current_user,
    PRIMARY KEY (store_id, first_seq),
    CHECK (last_seq >= first_seq AND checkpoint_seq >= last_seq)
);

-- A batch continues the store's shipped entries exactly (first_seq = high-water mark + 1), its
-- rows are all there (inserted before it, in the same transaction), and its checkpoint is at the
-- witness. Two shippers of one store: the second's rows or batch collide on a primary key.
CREATE OR REPLACE FUNCTION auditdb_ship.before_batch() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = auditdb_ship, pg_temp AS $$
DECLARE
    high bigint;
    held bigint;
BEGIN
    -- A publisher's batch of a store not registered to it is refused here, before anything else:
    -- row-level security would refuse it too, but only after this trigger, whose other checks (the
    -- high-water mark, the row count, the checkpoint) would tell the role about that store.
    IF pg_has_role(session_user, 'auditdb_publisher', 'MEMBER')
       AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = session_user)
       AND NOT EXISTS (SELECT 1 FROM auditdb_witness.stores s WHERE s.store_id = NEW.store_id AND s.publisher = session_user) THEN
        RAISE EXCEPTION 'new row violates row-level security: role % may not ship batches of store %', session_user, encode(NEW.store_id, 'hex')
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    NEW.shipped_at := now();
    NEW.shipped_by := session_user;
    SELECT coalesce(max(last_seq), 0) INTO high FROM batches WHERE store_id = NEW.store_id;
    IF NEW.first_seq <> high + 1 THEN
        RAISE EXCEPTION 'a batch must start right after the store''s shipped entries (seq %), not at seq %', high + 1, NEW.first_seq
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT count(*) INTO held FROM entries WHERE store_id = NEW.store_id AND seq BETWEEN NEW.first_seq AND NEW.last_seq;
    IF held <> NEW.last_seq - NEW.first_seq + 1 THEN
        RAISE EXCEPTION 'the batch of seqs %...% holds % rows', NEW.first_seq, NEW.last_seq, held
            USING ERRCODE = 'check_violation';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM auditdb_witness.checkpoints c WHERE c.store_id = NEW.store_id AND c.seq = NEW.checkpoint_seq
                   AND c.signature = NEW.checkpoint_signature) THEN
        RAISE EXCEPTION 'the batch names a checkpoint at seq % that the witness does not hold; publish it first', NEW.checkpoint_seq
            USING ERRCODE = 'check_violation';
    END IF;
    PERFORM apply_lifecycle(NEW.store_id, NEW.first_seq, NEW.last_seq);
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS batches_insert ON auditdb_ship.batches;
CREATE TRIGGER batches_insert BEFORE INSERT ON auditdb_ship.batches FOR EACH ROW EXECUTE FUNCTION auditdb_ship.before_batch();

-- Erasure reaches the central copy (docs/fleet.md, "Erased after shipping"; FORMAT.md 22.7): the
-- only change a row of entries ever takes, made by apply_lifecycle below inside the transaction of
-- the batch that ships the erasure entry (or when this file is installed again): fields that were
-- shown lose their value and nonce and gain their bit in `erased`; nothing else changes (the
-- commitment stays, so every proof still holds).
CREATE OR REPLACE FUNCTION auditdb_ship.lifecycle_change(o auditdb_ship.entries, n auditdb_ship.entries) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE SET search_path = auditdb_ship, pg_temp AS $$
DECLARE
    f text;
    b int := 1;
    oj jsonb := to_jsonb(o);
    nj jsonb := to_jsonb(n);
    withholdable text[] := ARRAY['actor', 'actor_nonce', 'source', 'source_nonce', 'details', 'details_nonce', 'erased'];
BEGIN
    IF o.tombstone IS NOT NULL THEN
        RETURN false;
    END IF;
    IF n.withheld <> o.withheld OR n.erased & o.erased <> o.erased OR n.erased = o.erased
       OR (oj - withholdable) <> (nj - withholdable) THEN
        RETURN false;
    END IF;
    FOREACH f IN ARRAY ARRAY['actor', 'source', 'details'] LOOP
        IF n.erased & b <> o.erased & b THEN
            IF o.withheld & b <> 0 OR nj -> f <> 'null'::jsonb OR nj -> (f || '_nonce') <> 'null'::jsonb THEN
                RETURN false;
            END IF;
        ELSIF nj -> f <> oj -> f OR nj -> (f || '_nonce') <> oj -> (f || '_nonce') THEN
            RETURN false;
        END IF;
        b := b * 2;
    END LOOP;
    RETURN true;
END $$;

-- An erasure entry's details (FORMAT.md 18, 21.3) as json, every \uXXXX escape (and every
-- escaped backslash) first replaced by "__": the members read here (fields, seqs, the member
-- names) hold none, and a database whose encoding is not UTF8 cannot un-escape code points above
-- U+007F (a reason may hold U+2028 or a bidirectional control, written escaped).
CREATE OR REPLACE FUNCTION auditdb_ship.engine_details(t text) RETURNS json
LANGUAGE sql IMMUTABLE AS $$
    SELECT regexp_replace(regexp_replace(t, '\\\\', '__', 'g'), '\\u[0-9a-fA-F]{4}', '__', 'g')::json
$$;

-- Why an erasure entry's details (at seq `entry`) do not read as FORMAT.md 21.3 says, or NULL:
-- exactly its members, each once; `fields` distinct names among actor, source, details (empty
-- only with `paths`); `seqs` 1 to 2,000 (500 with `paths`) integers, strictly increasing, each
-- at least 1 and below the entry's own seq; `paths` a non-empty array, with `residuals`.
CREATE OR REPLACE FUNCTION auditdb_ship.erasure_problem(d json, entry bigint) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = auditdb_ship, pg_temp AS $$
DECLARE
    members text[];
    n int;
BEGIN
    IF json_typeof(d) IS DISTINCT FROM 'object' THEN
        RETURN 'its details are not a JSON object';
    END IF;
    SELECT array_agg(k ORDER BY k) INTO members FROM json_object_keys(d) k;
    IF members IS DISTINCT FROM ARRAY['fields', 'reason', 'seqs', 'subject']
       AND members IS DISTINCT FROM ARRAY['fields', 'paths', 'reason', 'residuals', 'seqs', 'subject'] THEN
        RETURN 'its members are not reason, subject, fields, seqs (and paths with residuals), each once';
    END IF;
    IF json_typeof(d -> 'reason') <> 'string' OR d ->> 'reason' = '' OR json_typeof(d -> 'subject') <> 'string'
       OR d ->> 'subject' NOT IN ('actor', 'tenant', 'resource', 'seqs') THEN
        RETURN 'its reason or subject is not as 21.3 says';
    END IF;
    IF json_typeof(d -> 'fields') <> 'array'
       OR EXISTS (SELECT 1 FROM json_array_elements(d -> 'fields') x
                  WHERE json_typeof(x) <> 'string' OR x #>> '{}' NOT IN ('actor', 'source', 'details'))
       OR (SELECT count(*) <> count(DISTINCT x #>> '{}') FROM json_array_elements(d -> 'fields') x) THEN
        RETURN 'fields is not an array of distinct names among actor, source, details';
    END IF;
    IF d -> 'paths' IS NOT NULL THEN
        IF json_typeof(d -> 'paths') <> 'array' OR json_array_length(d -> 'paths') = 0 THEN
            RETURN 'paths is not a non-empty array';
        END IF;
    ELSIF json_array_length(d -> 'fields') = 0 THEN
        RETURN 'fields is empty and there are no paths';
    END IF;
    IF json_typeof(d -> 'seqs') <> 'array' THEN
        RETURN 'seqs is not an array';
    END IF;
    n := json_array_length(d -> 'seqs');
    IF n = 0 OR n > (CASE WHEN d -> 'paths' IS NULL THEN 2000 ELSE 500 END) THEN
        RETURN 'seqs holds ' || n || ' seqs';
    END IF;
    IF EXISTS (SELECT 1 FROM json_array_elements(d -> 'seqs') x WHERE json_typeof(x) <> 'number' OR x::text !~ '^[1-9][0-9]{0,18}$')
       OR EXISTS (SELECT 1 FROM (SELECT x::text::numeric AS s, lag(x::text::numeric) OVER (ORDER BY o) AS p
                                   FROM json_array_elements(d -> 'seqs') WITH ORDINALITY AS e(x, o)) q
                  WHERE q.s >= entry OR q.s <= q.p) THEN
        RETURN 'seqs are not integers strictly increasing from 1 and below the entry''s own seq';
    END IF;
    RETURN NULL;
END $$;

-- Applies, for the rows of one store at seqs low...high just shipped (a batch), the erasure
-- entries among them (FORMAT.md 22.7, "After shipping"): each erases its `fields` (and `details`
-- whole where it erased paths inside it) in each row of its `seqs` that shows them. One whose
-- details do not read as 21.3 says fails the batch: the store erased something, and the central
-- copy must not keep it quietly. Whether an entry is the store's own is proven by the central
-- verifier (a forged entry does not hash to the signed tree: `changed`); PostgreSQL cannot check
-- the checkpoint's signature here. Expiry is not applied: rows expired after they were shipped
-- keep their values centrally (their late tombstones say which), so that no shipper, with or
-- without the store's keys, can empty whole rows of the central copy.
CREATE OR REPLACE FUNCTION auditdb_ship.apply_lifecycle(store bytea, low bigint, high bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = auditdb_ship, pg_temp AS $$
DECLARE
    e record;
    d json;
    problem text;
    mask int;
    listed bigint[];
BEGIN
    -- What lets refuse_change pass the changes lifecycle_change allows, until the end of this function.
    PERFORM set_config('auditdb_ship.applying', 'on', true);
    FOR e IN SELECT seq, details FROM entries
             WHERE store_id = store AND seq BETWEEN low AND high AND action = 'auditdb.erasure' AND origin = 0
               AND tombstone IS NULL AND (withheld | erased) & 4 = 0 AND details IS NOT NULL
             ORDER BY seq LOOP
        BEGIN
            d := engine_details(e.details);
            problem := erasure_problem(d, e.seq);
        EXCEPTION WHEN others THEN
            problem := 'its details are not JSON (' || SQLERRM || ')';
        END;
        IF problem IS NOT NULL THEN
            RAISE EXCEPTION 'the erasure entry at seq % of store % does not read as FORMAT.md 21.3 says: %; AuditDB did not write it',
                e.seq, encode(store, 'hex'), problem USING ERRCODE = 'data_exception';
        END IF;
        SELECT coalesce(bit_or(CASE x WHEN 'actor' THEN 1 WHEN 'source' THEN 2 ELSE 4 END), 0) INTO mask
          FROM json_array_elements_text(d -> 'fields') x;
        IF d -> 'paths' IS NOT NULL THEN
            mask := mask | 4;
        END IF;
        SELECT array_agg(x::bigint) INTO listed FROM json_array_elements_text(d -> 'seqs') x;
        UPDATE entries SET
            actor = CASE WHEN mask & ~(withheld | erased) & 1 <> 0 THEN NULL ELSE actor END,
            actor_nonce = CASE WHEN mask & ~(withheld | erased) & 1 <> 0 THEN NULL ELSE actor_nonce END,
            source = CASE WHEN mask & ~(withheld | erased) & 2 <> 0 THEN NULL ELSE source END,
            source_nonce = CASE WHEN mask & ~(withheld | erased) & 2 <> 0 THEN NULL ELSE source_nonce END,
            details = CASE WHEN mask & ~(withheld | erased) & 4 <> 0 THEN NULL ELSE details END,
            details_nonce = CASE WHEN mask & ~(withheld | erased) & 4 <> 0 THEN NULL ELSE details_nonce END,
            erased = erased | (mask & ~(withheld | erased))
         WHERE store_id = store AND seq = ANY (listed) AND tombstone IS NULL
           AND mask & ~(withheld | erased) <> 0;
    END LOOP;
    PERFORM set_config('auditdb_ship.applying', 'off', true);
END $$;
REVOKE ALL ON FUNCTION auditdb_ship.apply_lifecycle(bytea, bigint, bigint) FROM PUBLIC;

CREATE OR REPLACE FUNCTION auditdb_ship.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- (Nested: the inner test is planned only for entries, whose rows lifecycle_change takes.)
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'entries' THEN
        IF current_setting('auditdb_ship.applying', true) = 'on' AND auditdb_ship.lifecycle_change(OLD, NEW) THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'the AuditDB central table % is append-only: % is refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

-- Every row an INSERT or COPY adds to entries (or tombstones) belongs to a store registered to the inserting
-- role (session_user, as in the witness's policies). Checked once per statement over its rows
-- (a transition table), not per row: PostgreSQL refuses COPY FROM into a table under row-level
-- security for the roles it applies to, and a per-row trigger would turn off COPY's batched
-- inserts. The table's owner (who may disable triggers anyway) loads any rows: a restore, or the
-- benchmark's baseline COPY, which pays for this trigger as shipping does.
CREATE OR REPLACE FUNCTION auditdb_ship.after_entries_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = auditdb_ship, pg_temp AS $$
DECLARE
    foreign_store bytea;
BEGIN
    IF pg_has_role(session_user, (SELECT relowner FROM pg_catalog.pg_class WHERE oid = TG_RELID), 'USAGE') THEN
        RETURN NULL;
    END IF;
    SELECT n.store_id INTO foreign_store FROM (SELECT DISTINCT store_id FROM inserted) n
     WHERE NOT EXISTS (SELECT 1 FROM auditdb_witness.stores s WHERE s.store_id = n.store_id AND s.publisher = session_user)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'role % may not ship entries of store %: it is not registered to that role', session_user, encode(foreign_store, 'hex')
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'register the store for this role (auditdb-fleet register), or ship with the role it is registered to';
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS entries_own_store ON auditdb_ship.entries;
CREATE TRIGGER entries_own_store AFTER INSERT ON auditdb_ship.entries REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION auditdb_ship.after_entries_insert();
DROP TRIGGER IF EXISTS tombstones_own_store ON auditdb_ship.tombstones;
CREATE TRIGGER tombstones_own_store AFTER INSERT ON auditdb_ship.tombstones REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION auditdb_ship.after_entries_insert();

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['entries', 'tombstones', 'batches'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON auditdb_ship.%I', t || '_no_change', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON auditdb_ship.%I FOR EACH ROW EXECUTE FUNCTION auditdb_ship.refuse_change()', t || '_no_change', t);
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON auditdb_ship.%I', t || '_no_truncate', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON auditdb_ship.%I FOR EACH STATEMENT EXECUTE FUNCTION auditdb_ship.refuse_change()', t || '_no_truncate', t);
    END LOOP;
END $$;

-- Instances (members of auditdb_publisher) insert their own stores' entries (the trigger above)
-- and record and read their own batches (row-level security); auditors read all.
REVOKE ALL ON ALL TABLES IN SCHEMA auditdb_ship FROM PUBLIC;
REVOKE SELECT ON auditdb_ship.entries FROM auditdb_publisher;
GRANT USAGE ON SCHEMA auditdb_ship TO auditdb_publisher, auditdb_auditor;
GRANT INSERT ON auditdb_ship.entries, auditdb_ship.tombstones TO auditdb_publisher;
GRANT SELECT, INSERT ON auditdb_ship.batches TO auditdb_publisher;
GRANT SELECT ON auditdb_ship.entries, auditdb_ship.tombstones, auditdb_ship.batches TO auditdb_auditor;
ALTER TABLE auditdb_ship.entries DISABLE ROW LEVEL SECURITY;
ALTER TABLE auditdb_ship.tombstones DISABLE ROW LEVEL SECURITY;
ALTER TABLE auditdb_ship.batches ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS ship_own ON auditdb_ship.entries;
DROP POLICY IF EXISTS read_own ON auditdb_ship.entries;
DROP POLICY IF EXISTS audit_all ON auditdb_ship.entries;
DROP POLICY IF EXISTS ship_own ON auditdb_ship.batches;
CREATE POLICY ship_own ON auditdb_ship.batches FOR INSERT TO auditdb_publisher
    WITH CHECK (EXISTS (SELECT 1 FROM auditdb_witness.stores s WHERE s.store_id = batches.store_id AND s.publisher = session_user));
DROP POLICY IF EXISTS read_own ON auditdb_ship.batches;
CREATE POLICY read_own ON auditdb_ship.batches FOR SELECT TO auditdb_publisher
    USING (EXISTS (SELECT 1 FROM auditdb_witness.stores s WHERE s.store_id = batches.store_id AND s.publisher = session_user));
DROP POLICY IF EXISTS audit_all ON auditdb_ship.batches;
CREATE POLICY audit_all ON auditdb_ship.batches FOR SELECT TO auditdb_auditor USING (true);

-- A central database made by a version without apply_lifecycle: what its shipped erasure entries
-- say is applied now (idempotent: a field already erased or withheld is left as it is).
-- Store by store: one whose entries cannot be applied (an erasure entry that does not read as 21.3
-- says, shipped before this version checked them) is named in a warning and left as it is, so that
-- no instance's rows can stop the schema's installation for the fleet.
DO $$
DECLARE s record;
BEGIN
    FOR s IN SELECT store_id, max(last_seq) AS high FROM auditdb_ship.batches GROUP BY store_id LOOP
        BEGIN
            PERFORM auditdb_ship.apply_lifecycle(s.store_id, 1, s.high);
        EXCEPTION WHEN others THEN
            RAISE WARNING 'AuditDB: the erasure entries shipped for store % were not applied to its central rows: %. Run auditdb-fleet verify-shipped.',
                encode(s.store_id, 'hex'), SQLERRM;
        END;
    END LOOP;
END $$;
