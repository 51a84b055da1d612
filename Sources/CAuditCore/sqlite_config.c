// sqlite_config.c - sqlite3_db_config is variadic, so Swift cannot call it directly.
#include "audit_core.h"

#include <sqlite3.h>

int adb_sqlite_enable_triggers(void *connection, int enabled) {
    int now = -1;
    if (sqlite3_db_config((sqlite3 *)connection, SQLITE_DBCONFIG_ENABLE_TRIGGER, enabled, &now) != SQLITE_OK) return -1;
    return now;
}

int adb_sqlite_set_defensive(void *connection, int on) {
    int now = -1;
    if (sqlite3_db_config((sqlite3 *)connection, SQLITE_DBCONFIG_DEFENSIVE, on, &now) != SQLITE_OK) return -1;
    return now;
}
