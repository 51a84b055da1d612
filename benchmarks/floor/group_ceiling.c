/* group_ceiling.c - which indexes bound group commit: raw SQLite, synchronous=FULL, N rows per
 * commit into AuditDB's audit_entries table with a chosen subset of its indexes.
 *
 * usage: group_ceiling DBPATH PREFILL ROWS ROWS_PER_COMMIT INDEXES
 *   INDEXES is a bit mask: 1 = the bucketed actor and resource_id indexes, 2 = (tenant, recorded_at),
 *   4 = recorded_at, origin_ref (partial) and the engine index (partial). 7 = all of the store's.
 * PREFILL rows go in first (10,000 per commit, synchronous=NORMAL), then ROWS are timed.
 * benchmarks/floor/run.sh group runs the grid quoted in docs/performance.md.
 */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL; x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL; return x ^ (x >> 31);
}
static void ex(sqlite3 *db, const char *sql) {
    char *e = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &e) != SQLITE_OK) { fprintf(stderr, "%s\n%s\n", e, sql); exit(1); }
}

int main(int argc, char **argv) {
    if (argc < 6) { fprintf(stderr, "usage: %s DB PREFILL ROWS ROWS_PER_COMMIT INDEXES\n", argv[0]); return 2; }
    const char *path = argv[1];
    long prefill = atol(argv[2]), rows = atol(argv[3]), per = atol(argv[4]);
    int idx = atoi(argv[5]);
    char wal[4096];
    snprintf(wal, sizeof wal, "%s-wal", path);
    unlink(path); unlink(wal);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) return 1;
    ex(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
    ex(db, "CREATE TABLE audit_entries (seq INTEGER PRIMARY KEY, recorded_at INTEGER NOT NULL, occurred_at INTEGER, "
           "tenant TEXT, actor TEXT, action TEXT NOT NULL, resource_type TEXT, resource_id TEXT, outcome INTEGER NOT NULL, "
           "severity INTEGER NOT NULL, correlation_id TEXT, source TEXT, details TEXT, origin INTEGER NOT NULL, "
           "origin_ref INTEGER, format_version INTEGER NOT NULL, key_version INTEGER NOT NULL, mac BLOB NOT NULL) STRICT;");
    if (idx & 1) ex(db, "CREATE INDEX audit_entries_actor ON audit_entries((seq >> 14), actor) WHERE actor IS NOT NULL;"
                        "CREATE INDEX audit_entries_resource ON audit_entries((seq >> 14), resource_id) WHERE resource_id IS NOT NULL;");
    if (idx & 2) ex(db, "CREATE INDEX audit_entries_tenant_time ON audit_entries(tenant, recorded_at) WHERE tenant IS NOT NULL;");
    if (idx & 4) ex(db, "CREATE INDEX audit_entries_recorded_at ON audit_entries(recorded_at);"
                        "CREATE INDEX audit_entries_origin_ref ON audit_entries(origin_ref) WHERE origin_ref IS NOT NULL;"
                        "CREATE INDEX audit_entries_engine ON audit_entries(action) WHERE action >= 'auditdb.' AND action < 'auditdb/';");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "INSERT INTO audit_entries VALUES (?,?,?,?,?,?,'document',?,0,1,NULL,NULL,?,0,NULL,1,1,?)",
                           -1, &st, NULL) != SQLITE_OK) return 1;
    static const char *actions[] = {"document.read", "document.write", "document.delete", "document.share",
                                    "login", "logout", "permission.grant", "permission.revoke"};
    char tenant[16], actor[16], resource[48], details[256];
    uint8_t mac[32] = {0};
    long seq = 0;
    for (int phase = 0; phase < 2; phase++) {
        long n = phase == 0 ? prefill : rows, batch = phase == 0 ? 10000 : per, commits = 0;
        if (phase == 1) ex(db, "PRAGMA synchronous=FULL;");
        double t0 = now_s();
        for (long i = 0; i < n;) {
            ex(db, "BEGIN IMMEDIATE");
            for (long j = 0; j < batch && i < n; j++, i++) {
                seq++;
                uint64_t x = mix((uint64_t)seq), y = mix(x);
                snprintf(tenant, sizeof tenant, "tenant-%02u", (unsigned)((x >> 40) % 64));
                snprintf(actor, sizeof actor, "user-%05u", (unsigned)(x % 50000));
                snprintf(resource, sizeof resource, "/projects/%u/docs/%u", (unsigned)((x >> 24) % 1000), (unsigned)(y % 100000));
                snprintf(details, sizeof details, "{\"bytes\":%u,\"request_id\":\"%016llx%016llx\",\"status\":%u,"
                         "\"ua\":\"Mozilla/5.0 (X11; Linux x86_64) AuditClient/1.4\",\"reason\":\"policy-check\"}",
                         (unsigned)(y % 1000000), (unsigned long long)x, (unsigned long long)y, 200 + (unsigned)(y % 300));
                memcpy(mac, &x, 8);
                int64_t ts = 1700000000000000LL + seq * 1000;
                sqlite3_bind_int64(st, 1, seq);
                sqlite3_bind_int64(st, 2, ts);
                sqlite3_bind_int64(st, 3, ts);
                sqlite3_bind_text(st, 4, tenant, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 5, actor, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 6, actions[(x >> 20) & 7], -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 7, resource, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 8, details, -1, SQLITE_STATIC);
                sqlite3_bind_blob(st, 9, mac, 32, SQLITE_STATIC);
                if (sqlite3_step(st) != SQLITE_DONE) { fprintf(stderr, "insert: %s\n", sqlite3_errmsg(db)); return 1; }
                sqlite3_reset(st);
            }
            ex(db, "COMMIT");
            commits++;
        }
        double t = now_s() - t0;
        if (phase == 1)
            printf("| %d | %ld | %.0f | %.0f |\n", idx, per, n / t, t * 1e6 / commits);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    unlink(path); unlink(wal);
    return 0;
}
