-- The central tables as one JSON document ("auditdb-shipped-dump v1") for docs/verifier/shipping.py
-- (FORMAT.md 22.7), read with the auditor's role:
--   psql -X -At -f docs/verifier/shipped_dump.sql "postgresql://auditor@db/witness" > dump.json
-- bytea as lowercase hex, times as microseconds since the epoch, NULL as null; column names as in
-- postgres/witness.sql and postgres/witness_shipping.sql. Held in memory whole: for a reference
-- check, not for a large table (use `auditdb-fleet verify-shipped` there).
SELECT json_build_object(
    'format', 'auditdb-shipped-dump v1',
    'keys', (SELECT coalesce(json_agg(json_build_object(
                 'store_id', encode(store_id, 'hex'), 'key_version', key_version, 'public_key', encode(public_key, 'hex'))
                 ORDER BY store_id, key_version), '[]'::json)
             FROM auditdb_witness.keys),
    'checkpoints', (SELECT coalesce(json_agg(json_build_object(
                 'store_id', encode(store_id, 'hex'), 'seq', seq, 'chain_head', encode(chain_head, 'hex'),
                 'merkle_root', encode(merkle_root, 'hex'), 'signed_time', signed_time, 'key_version', key_version,
                 'public_key', encode(public_key, 'hex'), 'signature', encode(signature, 'hex')) ORDER BY id), '[]'::json)
             FROM auditdb_witness.checkpoints),
    'batches', (SELECT coalesce(json_agg(json_build_object(
                 'store_id', encode(store_id, 'hex'), 'first_seq', first_seq, 'last_seq', last_seq,
                 'checkpoint_seq', checkpoint_seq, 'checkpoint_signature', encode(checkpoint_signature, 'hex'),
                 'proof', encode(proof, 'hex')) ORDER BY store_id, first_seq), '[]'::json)
             FROM auditdb_ship.batches),
    'entries', (SELECT coalesce(json_agg(json_build_object(
                 'store_id', encode(store_id, 'hex'), 'seq', seq,
                 'recorded_at', (extract(epoch FROM recorded_at) * 1000000)::bigint,
                 'occurred_at', (extract(epoch FROM occurred_at) * 1000000)::bigint,
                 'tenant', tenant, 'actor', actor, 'action', action, 'resource_type', resource_type,
                 'resource_id', resource_id, 'outcome', outcome, 'severity', severity, 'correlation_id', correlation_id,
                 'source', source, 'details', details, 'origin', origin, 'origin_ref', origin_ref,
                 'format_version', format_version, 'key_version', key_version,
                 'actor_nonce', encode(actor_nonce, 'hex'), 'source_nonce', encode(source_nonce, 'hex'),
                 'details_nonce', encode(details_nonce, 'hex'), 'actor_commitment', encode(actor_commitment, 'hex'),
                 'source_commitment', encode(source_commitment, 'hex'), 'details_commitment', encode(details_commitment, 'hex'),
                 'withheld', withheld, 'erased', erased, 'leaf', encode(leaf, 'hex'), 'tombstone', encode(tombstone, 'hex'),
                 'expiry_seq', expiry_seq) ORDER BY store_id, seq, ctid), '[]'::json)
             FROM auditdb_ship.entries),
    'tombstones', (SELECT coalesce(json_agg(json_build_object(
                 'store_id', encode(store_id, 'hex'), 'seq', seq, 'tombstone', encode(tombstone, 'hex'),
                 'expiry_seq', expiry_seq) ORDER BY store_id, seq), '[]'::json)
             FROM auditdb_ship.tombstones)
);
