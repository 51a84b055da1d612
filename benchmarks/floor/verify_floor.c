/* verify_floor.c - the fastest this machine can verify AuditDB's row format, measured.
 *
 * Builds a store-shaped table of N signed, chained rows (AuditDB's own C core seals them), then
 * times, on 1 and 2 threads (one NOMUTEX connection per thread, the seq range split in half):
 *   scan   - read every column of every row (sqlite3_step + sqlite3_column_*), no crypto;
 *   crypto - adb_row_check over rows already in memory, no SQLite;
 *   verify - adb_verify_run: AuditDB's own C fast path (read + shape check + row and link tags).
 * The verify figure is the ceiling for AuditDB's verify() on this format: it leaves out only
 * Swift, GRDB and the report. See docs/performance.md ("What bounds the misses").
 *
 * usage: verify_floor DBPATH [ROWS]      (benchmarks/floor/run.sh builds and runs it)
 */
#include "audit_core.h"
#include "audit_row.h"
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

#define CK(db, x) do { int rc_ = (x); if (rc_ != SQLITE_OK && rc_ != SQLITE_DONE && rc_ != SQLITE_ROW) { \
    fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, sqlite3_errmsg(db)); exit(1); } } while (0)

static const char *SELECT_SQL =
    "SELECT seq, recorded_at, occurred_at, tenant, actor, action, resource_type, resource_id, outcome, severity, "
    "correlation_id, source, details, origin, origin_ref, format_version, key_version, mac "
    "FROM audit_entries WHERE seq >= ? AND seq <= ? ORDER BY seq";

/* The bench's row shape: 64 tenants, 50k actors, 8 actions, high-cardinality resource ids, ~205-byte details. */
typedef struct { char tenant[16], actor[16], action[24], resource[48], details[320]; } text_row;
static const char *ACTIONS[] = {"document.read", "document.write", "document.delete", "document.share",
                                "login", "logout", "permission.grant", "permission.revoke"};

static void make_row(int64_t seq, adb_row *r, text_row *t) {
    uint64_t x = splitmix64((uint64_t)seq), y = splitmix64(x);
    memset(r, 0, sizeof *r);
    snprintf(t->tenant, sizeof t->tenant, "tenant-%02u", (unsigned)((x >> 40) % 64));
    snprintf(t->actor, sizeof t->actor, "user-%05u", (unsigned)(x % 50000));
    snprintf(t->action, sizeof t->action, "%s", ACTIONS[(x >> 20) & 7]);
    snprintf(t->resource, sizeof t->resource, "/projects/%u/docs/%u", (unsigned)((x >> 24) % 1000), (unsigned)(y % 100000));
    snprintf(t->details, sizeof t->details,
             "{\"bytes\":%u,\"ip\":\"10.%u.%u.%u\",\"reason\":\"policy-check\",\"request_id\":\"%016llx%016llx\","
             "\"session\":\"%016llx\",\"status\":%u,\"ua\":\"Mozilla/5.0 (X11; Linux x86_64) AuditClient/1.4\"}",
             (unsigned)(y % 1000000), (unsigned)((y >> 8) & 255), (unsigned)((y >> 16) & 255), (unsigned)((y >> 24) & 255),
             (unsigned long long)x, (unsigned long long)y, (unsigned long long)(x ^ y), 200 + (unsigned)((y >> 32) % 300));
    r->seq = seq;
    r->recorded_at = 1700000000000000LL + seq * 1000;
    r->occurred_at = r->recorded_at - 5;
    r->has_occurred_at = 1;
    r->key_version = 1;
    r->format_version = 1;
    r->outcome = (uint8_t)(y % 4 == 3 ? 1 : 0);
    r->severity = (uint8_t)(x % 3);
#define B(f, s) r->f.ptr = (const uint8_t *)(s); r->f.len = (int64_t)strlen(s)
    B(tenant, t->tenant); B(actor, t->actor); B(action, t->action); B(resource_type, "document");
    B(resource_id, t->resource); B(details, t->details);
#undef B
    r->correlation_id.len = -1;
    r->source.len = -1;
}

static adb_keyset *KS;
static uint8_t STORE_ID[16] = {0x41, 0x55, 0x44, 0x49, 0x54, 0x44, 0x42, 0x2d, 0x66, 0x6c, 0x6f, 0x6f, 0x72, 0, 0, 1};
static const char *PATH;
static int64_t ROWS;

typedef struct { int64_t lo, hi; int mode; int64_t ok; adb_row *rows; uint8_t *macs; } job;

static void *run(void *arg) {
    job *j = arg;
    if (j->mode == 1) { /* crypto only */
        uint8_t prev[32];
        memcpy(prev, j->lo == 1 ? (uint8_t[32]){0} : j->macs + (j->lo - 2) * 32, 32);
        for (int64_t s = j->lo; s <= j->hi; s++) {
            if (adb_row_check(KS, STORE_ID, &j->rows[s - 1], prev, j->macs + (s - 1) * 32, 32) == ADB_OK) j->ok++;
            memcpy(prev, j->macs + (s - 1) * 32, 32);
        }
        return NULL;
    }
    sqlite3 *db;
    CK(db, sqlite3_open_v2(PATH, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL));
    sqlite3_busy_timeout(db, 10000);
    sqlite3_stmt *st;
    CK(db, sqlite3_prepare_v2(db, SELECT_SQL, -1, &st, NULL));
    CK(db, sqlite3_exec(db, "BEGIN", NULL, NULL, NULL));
    sqlite3_bind_int64(st, 1, j->lo);
    sqlite3_bind_int64(st, 2, j->hi);
    if (j->mode == 0) { /* scan: every column */
        volatile int64_t sink = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            for (int i = 0; i < 18; i++) {
                int t = sqlite3_column_type(st, i);
                if (t == SQLITE_INTEGER) sink += sqlite3_column_int64(st, i);
                else if (t == SQLITE_TEXT) sink += (int64_t)(size_t)sqlite3_column_text(st, i) + sqlite3_column_bytes(st, i);
                else if (t == SQLITE_BLOB) sink += (int64_t)(size_t)sqlite3_column_blob(st, i) + sqlite3_column_bytes(st, i);
            }
            j->ok++;
        }
    } else { /* AuditDB's fast path */
        uint8_t prev[32] = {0};
        if (j->lo > 1) { /* the previous row's MAC, as the verifier reads it */
            sqlite3_stmt *p;
            CK(db, sqlite3_prepare_v2(db, "SELECT mac FROM audit_entries WHERE seq = ?", -1, &p, NULL));
            sqlite3_bind_int64(p, 1, j->lo - 1);
            CK(db, sqlite3_step(p));
            memcpy(prev, sqlite3_column_blob(p, 0), 32);
            sqlite3_finalize(p);
        }
        adb_key_entry key = {1, 1, KS};
        int64_t expected = j->lo;
        int rc = adb_verify_run(st, &key, 1, STORE_ID, 1, &expected, prev, &j->ok, NULL, INT64_MAX);
        if (rc != SQLITE_DONE) { fprintf(stderr, "verify stopped at seq %lld (rc %d)\n", (long long)expected, rc); exit(1); }
    }
    sqlite3_finalize(st);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
    return NULL;
}

static double timed_threads(int threads, int mode, adb_row *rows, uint8_t *macs) {
    job jobs[2];
    pthread_t tid[2];
    double t0 = now_s();
    for (int k = 0; k < threads; k++) {
        jobs[k] = (job){.lo = 1 + ROWS * k / threads, .hi = ROWS * (k + 1) / threads, .mode = mode, .rows = rows, .macs = macs};
        pthread_create(&tid[k], NULL, run, &jobs[k]);
    }
    int64_t ok = 0;
    for (int k = 0; k < threads; k++) { pthread_join(tid[k], NULL); ok += jobs[k].ok; }
    double t = now_s() - t0;
    if (ok != ROWS) { fprintf(stderr, "mode %d: %lld of %lld rows ok\n", mode, (long long)ok, (long long)ROWS); exit(1); }
    return ROWS / t;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s DBPATH [ROWS]\n", argv[0]); return 2; }
    PATH = argv[1];
    ROWS = argc > 2 ? atoll(argv[2]) : 1000000;
    KS = malloc(adb_keyset_size());
    uint8_t master[32];
    for (int i = 0; i < 32; i++) master[i] = (uint8_t)(0xA0 + i); /* a benchmark key, not a secret */
    adb_keyset_init(KS, master);
    adb_row *rows = malloc(sizeof(adb_row) * ROWS);
    text_row *texts = malloc(sizeof(text_row) * ROWS);
    uint8_t *macs = malloc(32 * ROWS), prev[32] = {0};
    for (int64_t s = 1; s <= ROWS; s++) {
        make_row(s, &rows[s - 1], &texts[s - 1]);
        adb_row_seal(KS, STORE_ID, &rows[s - 1], prev, macs + (s - 1) * 32);
        memcpy(prev, macs + (s - 1) * 32, 32);
    }
    unlink(PATH);
    sqlite3 *db;
    CK(db, sqlite3_open(PATH, &db));
    CK(db, sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; CREATE TABLE audit_entries ("
        "seq INTEGER PRIMARY KEY, recorded_at INTEGER NOT NULL, occurred_at INTEGER, tenant TEXT, actor TEXT, "
        "action TEXT NOT NULL, resource_type TEXT, resource_id TEXT, outcome INTEGER NOT NULL, severity INTEGER NOT NULL, "
        "correlation_id TEXT, source TEXT, details TEXT, origin INTEGER NOT NULL, origin_ref INTEGER, "
        "format_version INTEGER NOT NULL, key_version INTEGER NOT NULL, mac BLOB NOT NULL) STRICT; BEGIN", NULL, NULL, NULL));
    sqlite3_stmt *ins;
    CK(db, sqlite3_prepare_v2(db, "INSERT INTO audit_entries VALUES (?,?,?,?,?,?,?,?,?,?,NULL,NULL,?,0,NULL,1,1,?)", -1, &ins, NULL));
    for (int64_t s = 1; s <= ROWS; s++) {
        adb_row *r = &rows[s - 1];
        sqlite3_bind_int64(ins, 1, s);
        sqlite3_bind_int64(ins, 2, r->recorded_at);
        sqlite3_bind_int64(ins, 3, r->occurred_at);
        sqlite3_bind_text(ins, 4, (const char *)r->tenant.ptr, (int)r->tenant.len, SQLITE_STATIC);
        sqlite3_bind_text(ins, 5, (const char *)r->actor.ptr, (int)r->actor.len, SQLITE_STATIC);
        sqlite3_bind_text(ins, 6, (const char *)r->action.ptr, (int)r->action.len, SQLITE_STATIC);
        sqlite3_bind_text(ins, 7, "document", 8, SQLITE_STATIC);
        sqlite3_bind_text(ins, 8, (const char *)r->resource_id.ptr, (int)r->resource_id.len, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 9, r->outcome);
        sqlite3_bind_int64(ins, 10, r->severity);
        sqlite3_bind_text(ins, 11, (const char *)r->details.ptr, (int)r->details.len, SQLITE_STATIC);
        sqlite3_bind_blob(ins, 12, macs + (s - 1) * 32, 32, SQLITE_STATIC);
        if (sqlite3_step(ins) != SQLITE_DONE) { fprintf(stderr, "insert: %s\n", sqlite3_errmsg(db)); return 1; }
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    CK(db, sqlite3_exec(db, "COMMIT; PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL));
    sqlite3_close(db);
    timed_threads(2, 0, rows, macs); /* warm the page cache */
    printf("| case | 1 thread rows/s | 2 threads rows/s |\n|---|---|---|\n");
    const char *names[] = {"scan (every column, no crypto)", "crypto only (adb_row_check, rows in memory)",
                           "verify floor (adb_verify_run: read + check, NOMUTEX connections)"};
    for (int mode = 0; mode < 3; mode++) {
        double best1 = 0, best2 = 0;
        for (int rep = 0; rep < 3; rep++) {
            double a = timed_threads(1, mode, rows, macs), b = timed_threads(2, mode, rows, macs);
            if (a > best1) best1 = a;
            if (b > best2) best2 = b;
        }
        printf("| %s | %.0f | %.0f |\n", names[mode], best1, best2);
    }
    printf("\n(best of 3 each; %lld rows of ~%zu bytes of text; SQLite %s)\n", (long long)ROWS,
           strlen(texts[0].details) + strlen(texts[0].resource), sqlite3_libversion());
    unlink(PATH);
    return 0;
}
