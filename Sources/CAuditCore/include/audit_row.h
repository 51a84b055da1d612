// audit_row.h - the signed row as SQLite holds it: the one definition of its columns (names,
// order, indices), the reader of a statement's current row, the binder of an insert, and the
// verifier's fast path over a statement. docs/FORMAT.md, section 5 and Appendix A, is the
// contract; Sources/AuditDB/Row/ is the Swift side, which uses these definitions.
#ifndef AUDITDB_AUDIT_ROW_H
#define AUDITDB_AUDIT_ROW_H

#include "audit_core.h"

struct sqlite3_stmt;

/// The columns of audit_entries in the order every row statement selects them (and every insert
/// binds them, as parameters ?1..?19). ADB_ROW_COLUMNS names them in that order. `seals` (migration
/// 0006, FORMAT.md section 21) is last; a store without that column selects NULL in its place
/// (ADB_ROW_COLUMNS_LEGACY).
enum {
    ADB_COL_SEQ = 0,
    ADB_COL_RECORDED_AT = 1,
    ADB_COL_OCCURRED_AT = 2,
    ADB_COL_TENANT = 3,
    ADB_COL_ACTOR = 4,
    ADB_COL_ACTION = 5,
    ADB_COL_RESOURCE_TYPE = 6,
    ADB_COL_RESOURCE_ID = 7,
    ADB_COL_OUTCOME = 8,
    ADB_COL_SEVERITY = 9,
    ADB_COL_CORRELATION_ID = 10,
    ADB_COL_SOURCE = 11,
    ADB_COL_DETAILS = 12,
    ADB_COL_ORIGIN = 13,
    ADB_COL_ORIGIN_REF = 14,
    ADB_COL_FORMAT_VERSION = 15,
    ADB_COL_KEY_VERSION = 16,
    ADB_COL_MAC = 17,
    ADB_COL_SEALS = 18,
    ADB_COL_COUNT = 19,
};
// One literal on one line, so that Swift imports it as a String.
#define ADB_ROW_COLUMNS "seq, recorded_at, occurred_at, tenant, actor, action, resource_type, resource_id, outcome, severity, correlation_id, source, details, origin, origin_ref, format_version, key_version, mac, seals"
#define ADB_ROW_COLUMNS_LEGACY "seq, recorded_at, occurred_at, tenant, actor, action, resource_type, resource_id, outcome, severity, correlation_id, source, details, origin, origin_ref, format_version, key_version, mac, NULL"

/// Results of adb_stmt_read_row: why a stored row cannot be checked at all.
enum {
    ADB_SHAPE_OK = 0,
    ADB_SHAPE_NOT_INTEGER = 1,          ///< column *column is not an integer
    ADB_SHAPE_NOT_INTEGER_OR_NULL = 2,  ///< column *column is neither an integer nor NULL
    ADB_SHAPE_NOT_TEXT_OR_NULL = 3,     ///< column *column is neither text nor NULL
    ADB_SHAPE_ACTION_NULL = 4,          ///< action is NULL
    ADB_SHAPE_BAD_MAC = 5,              ///< the MAC is missing or not 32 bytes
    ADB_SHAPE_BAD_CODE = 6,             ///< outcome, severity or origin holds an undefined code
    ADB_SHAPE_BAD_FORMAT = 7,           ///< format_version is not in 1...`max_format`
    ADB_SHAPE_BAD_KEY_VERSION = 8,      ///< key_version is not a u32
    ADB_SHAPE_BAD_SEALS = 9,            ///< seals is not NULL on a format-1 row, or not valid seals on a format-2 row
};
/// Reads the current row of `stmt` (selecting ADB_ROW_COLUMNS) into `row` and checks every
/// column's type and range. `row` is always filled, so that a malformed row can still be shown
/// (integer columns as SQLite reads them as integers, codes truncated to a byte; a text column
/// holding a blob as its bytes, holding a number as NULL); only on ADB_SHAPE_OK is it the row
/// that was signed. No value is converted in place, so reading a row again gives the same. `*mac` points at the stored MAC if it is a 32-byte blob, else is NULL. Otherwise
/// `*column` names the column at fault where there is one (-1 if none). `row` and `*mac` point
/// into `stmt` and stay valid until it is stepped or reset. One C call instead of ~40 SQLite API
/// calls made from Swift: the verifier's per-row cost (docs/performance.md).
int adb_stmt_read_row(struct sqlite3_stmt *stmt, uint8_t max_format, adb_row *row, const uint8_t **mac,
                      int *column);
/// Binds `row` and `mac` to the parameters ?1..?19 of an insert of ADB_ROW_COLUMNS, without
/// copies (SQLITE_STATIC): every pointer must stay valid until the statement is stepped and
/// reset. Returns SQLITE_OK or the first error.
int adb_stmt_bind_row(struct sqlite3_stmt *stmt, const adb_row *row, const uint8_t mac[ADB_MAC_LEN]);

/// A key version the verifier may check rows against.
typedef struct {
    uint32_t version;
    int32_t trusted;           ///< 0 if declared compromised: its rows need the slow path (attestations)
    const adb_keyset *keyset;
} adb_key_entry;
/// The verifier's fast path: steps `stmt` (as for adb_stmt_read_row, ordered by seq) and checks
/// each row whose seq is `*expected_seq`, whose shape is valid, whose key version is in `keys`
/// and trusted, and whose row and link tags match (chained to `prev_mac`). For each such row it
/// advances `*expected_seq`, copies the row's MAC into `prev_mac` and counts it in `*checked`.
/// It stops at the first row that is not such a row and returns SQLITE_ROW with that row current
/// and unchecked (the caller reports what is wrong with it); SQLITE_DONE at the end; any other
/// code is SQLite's error.
/// Each row it checks is also added to `index_digest` (if not NULL). Once `*checked` reaches
/// `max_rows` it returns SQLITE_ROW with the next row current and unchecked, as for a row it
/// does not take (so that the caller can report progress, then check that row and go on).
int adb_verify_run(struct sqlite3_stmt *stmt, const adb_key_entry *keys, int key_count,
                   const uint8_t store_id[ADB_STORE_ID_LEN], uint8_t max_format, int64_t *expected_seq,
                   uint8_t prev_mac[ADB_MAC_LEN], int64_t *checked, adb_index_digest *index_digest,
                   int64_t max_rows);
/// The verifier's fast path through expired rows (FORMAT.md section 20.4): steps `stmt` (selecting
/// seq, key_version, mac from audit_expired, ordered by seq) and, for each tombstone whose seq is
/// `*expected_seq`, whose key version is in `keys` and whose link tag follows `prev_mac`, advances
/// `*expected_seq`, copies its MAC into `prev_mac` and counts it in `*walked`. Returns SQLITE_ROW
/// with the first other tombstone current and unchecked, SQLITE_DONE at the end, or SQLite's error.
int adb_walk_tombstones(struct sqlite3_stmt *stmt, const adb_key_entry *keys, int key_count,
                        const uint8_t store_id[ADB_STORE_ID_LEN], int64_t *expected_seq, uint8_t prev_mac[ADB_MAC_LEN],
                        int64_t *walked);
/// Adds the entries that the current row of a row statement puts into each index, from its stored
/// values, whatever their types (a malformed row is in the indexes as stored, too).
void adb_index_digest_add_row(adb_index_digest *d, struct sqlite3_stmt *stmt);

#endif
