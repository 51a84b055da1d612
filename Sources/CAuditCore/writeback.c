// writeback.c - starting the kernel's write-back of a file without waiting for it (Linux's
// sync_file_range needs _GNU_SOURCE, which Swift's Glibc module does not define). See audit_sqlite.h.
#define _GNU_SOURCE
#include "audit_sqlite.h"

#include <fcntl.h>

int adb_start_writeback(int fd) {
#if defined(__linux__)
    return sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd;
    return 0;
#endif
}
