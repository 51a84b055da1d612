// audit_sqlite.h - the C parts of connection set-up that Swift cannot do itself (sqlite3_db_config
// is variadic; the index digest is an SQL function in C), and the legacy-source digest of an
// adoption. The row itself is audit_row.h's.
#ifndef AUDITDB_AUDIT_SQLITE_H
#define AUDITDB_AUDIT_SQLITE_H

#include "audit_core.h"

struct sqlite3;
struct sqlite3_stmt;

/// sqlite3_db_config(SQLITE_DBCONFIG_ENABLE_TRIGGER): returns the new setting (0/1), or -1 on error.
int adb_sqlite_enable_triggers(struct sqlite3 *connection, int enabled);
/// sqlite3_db_config(SQLITE_DBCONFIG_DEFENSIVE): returns the new setting, or -1 on error.
int adb_sqlite_set_defensive(struct sqlite3 *connection, int on);
/// Reads the first `count` bytes of the connection's main database file through SQLite's own
/// open file (SQLITE_FCNTL_FILE_POINTER, then xRead): never a descriptor of our own, whose close
/// would release every POSIX lock this process holds on the file. Returns SQLITE_OK,
/// SQLITE_IOERR_SHORT_READ (the rest of `out` zeroed) or SQLite's error.
int adb_sqlite_read_main_header(struct sqlite3 *connection, uint8_t *out, int count);
/// Registers the SQL aggregate `auditdb_index_digest(key, index, v1, ..., rowid)` (the index
/// side of the index proof: one covering scan per index). Returns SQLITE_OK or SQLite's error.
int adb_register_index_digest(struct sqlite3 *connection);

/// A running SHA-256 (OpenSSL's, with the CPU's SHA extensions). Free with adb_digest_finish.
typedef struct adb_digest adb_digest;
adb_digest *adb_digest_start(void);
/// Writes the digest to `out` (unless it is NULL) and frees `state`.
void adb_digest_finish(adb_digest *state, uint8_t out[ADB_HASH_LEN]);
/// Adds `len` bytes to the running digest.
void adb_digest_update(adb_digest *state, const uint8_t *bytes, size_t len);
/// Hashes columns 0..<count of the current row of `stmt` into `state`, each as u8 type || u32
/// big-endian byte length || bytes, a REAL as its 8 IEEE 754 bytes, big-endian: the source
/// digest of an adoption (digest 2, docs/migrations.md). With `legacy` (may be NULL), also into
/// it as digest 1 did, a REAL as SQLite's text for it (15 significant digits).
void adb_digest_columns(adb_digest *state, adb_digest *legacy, struct sqlite3_stmt *stmt, int count);

/// Starts the kernel writing `fd`'s dirty pages to disk without waiting for it (Linux's
/// sync_file_range with SYNC_FILE_RANGE_WRITE; does nothing elsewhere). Not a durability point: it
/// only leaves less for a later fsync of the same file. Returns 0 or -1 (errno set).
int adb_start_writeback(int fd);

#endif
