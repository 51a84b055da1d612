// LD_PRELOAD shim for the power-loss test (Tests/AuditDBTests/Reliability/PowerLossTests.swift).
// Not a SwiftPM target: the test compiles it at run time with the toolchain's C compiler.
//
// Records, in call order, every file-system call that decides what a power cut could leave on
// disk, for the files under the directory $PLTRACE_DIR (and the directory itself):
// open/openat/creat (fd -> path), pwrite/pwrite64/write (offset + data), ftruncate, fsync/
// fdatasync, close, unlink/unlinkat, rename/renameat. Writes to fd 1 are recorded too, just
// before they happen (the crash child prints "ack SEQ INDEX" there after each acknowledged
// append, `auditdb append` its seq), so an acknowledgement has a position in the trace.
//
// Each record is appended to $PLTRACE_FILE (opened O_APPEND) with one writev, under a process
// mutex that is held across the real call as well, so the trace order is the order in which
// the calls completed. The real functions come from dlsym(RTLD_NEXT); a thread-local flag
// keeps the shim from tracing itself. mmap'd writes (SQLite's -shm) are not seen.
//
// Record: struct header (little-endian, 40 bytes) + `length` bytes of payload.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { R_OPEN = 1, R_WRITE = 2, R_TRUNC = 3, R_SYNC = 4, R_CLOSE = 5, R_UNLINK = 6, R_RENAME = 7, R_STDOUT = 8 };

struct record {
    uint32_t magic;   // 'PLT1'
    uint32_t type;
    int32_t pid;
    int32_t fd;
    uint64_t offset;  // write offset, truncate size, or open flags
    uint64_t length;  // payload bytes
    uint64_t result;  // the call's return value (as int64)
};

static pthread_mutex_t lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static __thread int inside;
static int trace_fd = -1;  // -1: not opened (yet, or tracing off)
static char dir[PATH_MAX];
static size_t dir_len;
static unsigned char tracked[65536];  // fds under dir (or the dir itself)

#define REAL(name, ret, ...) \
    static ret (*real_##name)(__VA_ARGS__); \
    if (!real_##name) real_##name = (ret(*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name)

static ssize_t raw_writev(int fd, const struct iovec *iov, int n) {
    REAL(writev, ssize_t, int, const struct iovec *, int);
    return real_writev(fd, iov, n);
}

// Runs once per process, before main (the constructor) or at the first traced call, whichever
// comes first. pthread_once makes every other thread wait until the trace file is open: an
// unsynchronised lazy set-up let a thread see "tracing off" while another was still opening the
// file, and its opens (the store and its -wal) went untracked under load.
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
static void setup_now(void) {
    trace_fd = -1;
    const char *file = getenv("PLTRACE_FILE"), *d = getenv("PLTRACE_DIR");
    if (!file || !d || strlen(d) >= sizeof dir) return;
    strcpy(dir, d);
    dir_len = strlen(dir);
    while (dir_len > 1 && dir[dir_len - 1] == '/') dir[--dir_len] = 0;
    REAL(open, int, const char *, int, ...);
    inside = 1;
    trace_fd = real_open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    inside = 0;
}
static void setup(void) { pthread_once(&setup_once, setup_now); }
__attribute__((constructor)) static void setup_at_load(void) { setup(); }

static void emit(uint32_t type, int fd, uint64_t offset, const void *a, size_t alen, const void *b, size_t blen,
                 int64_t result) {
    struct record r = {0x31544c50u, type, (int32_t)getpid(), fd, offset, alen + blen, (uint64_t)result};
    struct iovec iov[3] = {{&r, sizeof r}, {(void *)a, alen}, {(void *)b, blen}};
    size_t total = sizeof r + alen + blen;
    ssize_t done = raw_writev(trace_fd, iov, 3);
    if (done != (ssize_t)total) {
        // A short write would corrupt the stream for every later record: stop tracing loudly.
        static const char msg[] = "trace_shim: short write to the trace file; tracing stopped\n";
        struct iovec m = {(void *)msg, sizeof msg - 1};
        raw_writev(2, &m, 1);
        trace_fd = -1;
    }
}

// Makes `path` absolute (relative to `dirfd`), in `out`; returns 1 if it is under dir (or is dir).
static int resolve(int dirfd, const char *path, char *out) {
    if (!path) return 0;
    if (path[0] == '/') {
        snprintf(out, PATH_MAX, "%s", path);
    } else {
        char base[PATH_MAX];
        if (dirfd == AT_FDCWD) {
            if (!getcwd(base, sizeof base)) return 0;
        } else {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
            ssize_t n = readlink(link, base, sizeof base - 1);
            if (n < 0) return 0;
            base[n] = 0;
        }
        snprintf(out, PATH_MAX, "%s/%s", base, path);
    }
    return strncmp(out, dir, dir_len) == 0 && (out[dir_len] == 0 || out[dir_len] == '/');
}

static int active(void) {
    if (inside) return 0;
    setup();
    return trace_fd >= 0;
}

static void opened(int dirfd, const char *path, int flags, int fd) {
    char abs[PATH_MAX];
    if (fd < 0 || fd >= 65536 || !resolve(dirfd, path, abs)) return;
    tracked[fd] = 1;
    emit(R_OPEN, fd, (uint64_t)flags, abs, strlen(abs), NULL, 0, fd);
}

#define OPEN_BODY(call, dirfd)                                 \
    mode_t mode = 0;                                           \
    if (flags & (O_CREAT | __O_TMPFILE)) {                     \
        va_list ap;                                            \
        va_start(ap, flags);                                   \
        mode = va_arg(ap, mode_t);                             \
        va_end(ap);                                            \
    }                                                          \
    if (!active()) return call;                                \
    pthread_mutex_lock(&lock);                                 \
    inside = 1;                                                \
    int fd = call;                                             \
    int saved = errno;                                         \
    opened(dirfd, path, flags, fd);                            \
    inside = 0;                                                \
    pthread_mutex_unlock(&lock);                               \
    errno = saved;                                             \
    return fd;

int open(const char *path, int flags, ...) {
    REAL(open, int, const char *, int, ...);
    OPEN_BODY(real_open(path, flags, mode), AT_FDCWD)
}
int open64(const char *path, int flags, ...) {
    REAL(open64, int, const char *, int, ...);
    OPEN_BODY(real_open64(path, flags, mode), AT_FDCWD)
}
int openat(int dirfd, const char *path, int flags, ...) {
    REAL(openat, int, int, const char *, int, ...);
    OPEN_BODY(real_openat(dirfd, path, flags, mode), dirfd)
}
int openat64(int dirfd, const char *path, int flags, ...) {
    REAL(openat64, int, int, const char *, int, ...);
    OPEN_BODY(real_openat64(dirfd, path, flags, mode), dirfd)
}
int __open_2(const char *path, int flags) { return open(path, flags); }
int __open64_2(const char *path, int flags) { return open64(path, flags); }
int __openat_2(int dirfd, const char *path, int flags) { return openat(dirfd, path, flags); }
int __openat64_2(int dirfd, const char *path, int flags) { return openat64(dirfd, path, flags); }
int creat(const char *path, mode_t mode) { return open(path, O_CREAT | O_WRONLY | O_TRUNC, mode); }
int creat64(const char *path, mode_t mode) { return open64(path, O_CREAT | O_WRONLY | O_TRUNC, mode); }

static int is_tracked(int fd) { return fd >= 0 && fd < 65536 && tracked[fd]; }

#define PWRITE_BODY(name, type)                                                  \
    ssize_t name(int fd, const void *buf, size_t count, type offset) {           \
        REAL(name, ssize_t, int, const void *, size_t, type);                    \
        if (!active() || !is_tracked(fd)) return real_##name(fd, buf, count, offset); \
        pthread_mutex_lock(&lock);                                               \
        inside = 1;                                                              \
        ssize_t n = real_##name(fd, buf, count, offset);                         \
        int saved = errno;                                                       \
        if (n > 0) emit(R_WRITE, fd, (uint64_t)offset, buf, (size_t)n, NULL, 0, n); \
        inside = 0;                                                              \
        pthread_mutex_unlock(&lock);                                             \
        errno = saved;                                                           \
        return n;                                                                \
    }
PWRITE_BODY(pwrite, off_t)
PWRITE_BODY(pwrite64, off64_t)

ssize_t write(int fd, const void *buf, size_t count) {
    REAL(write, ssize_t, int, const void *, size_t);
    if (!active() || (fd != 1 && !is_tracked(fd))) return real_write(fd, buf, count);
    pthread_mutex_lock(&lock);
    inside = 1;
    off64_t offset = 0;
    if (fd != 1) {
        int flags = fcntl(fd, F_GETFL);
        struct stat st;
        if (flags >= 0 && (flags & O_APPEND) && fstat(fd, &st) == 0) offset = st.st_size;
        else offset = lseek64(fd, 0, SEEK_CUR);
    }
    // What a process prints is recorded before it is printed: an acknowledgement counts from
    // the moment the process decided to give it (the stricter position), and a SIGKILL cannot
    // leave an acknowledgement that was seen on the pipe but not in the trace.
    if (fd == 1) emit(R_STDOUT, fd, 0, buf, count, NULL, 0, (int64_t)count);
    ssize_t n = real_write(fd, buf, count);
    int saved = errno;
    if (n > 0 && fd != 1) emit(R_WRITE, fd, (uint64_t)offset, buf, (size_t)n, NULL, 0, n);
    inside = 0;
    pthread_mutex_unlock(&lock);
    errno = saved;
    return n;
}

#define FD_CALL(name, kind, offset_expr, ...)                \
    REAL(name, int, int, ##__VA_ARGS__);                              \
    if (!active() || !is_tracked(fd)) return CALL;                    \
    pthread_mutex_lock(&lock);                                        \
    inside = 1;                                                       \
    int rc = CALL;                                                    \
    int saved = errno;                                                \
    if (rc == 0) emit(kind, fd, offset_expr, NULL, 0, NULL, 0, rc);   \
    inside = 0;                                                       \
    pthread_mutex_unlock(&lock);                                      \
    errno = saved;                                                    \
    return rc;

int ftruncate(int fd, off_t length) {
#define CALL real_ftruncate(fd, length)
    FD_CALL(ftruncate, R_TRUNC, (uint64_t)length, off_t)
#undef CALL
}
int ftruncate64(int fd, off64_t length) {
#define CALL real_ftruncate64(fd, length)
    FD_CALL(ftruncate64, R_TRUNC, (uint64_t)length, off64_t)
#undef CALL
}
int fsync(int fd) {
#define CALL real_fsync(fd)
    FD_CALL(fsync, R_SYNC, 0)
#undef CALL
}
int fdatasync(int fd) {
#define CALL real_fdatasync(fd)
    FD_CALL(fdatasync, R_SYNC, 1)
#undef CALL
}

int close(int fd) {
    REAL(close, int, int);
    if (!active() || !is_tracked(fd)) return real_close(fd);
    pthread_mutex_lock(&lock);
    inside = 1;
    int rc = real_close(fd);
    int saved = errno;
    tracked[fd] = 0;  // the fd is gone whatever close returned
    emit(R_CLOSE, fd, 0, NULL, 0, NULL, 0, rc);
    inside = 0;
    pthread_mutex_unlock(&lock);
    errno = saved;
    return rc;
}

static void unlinked(int dirfd, const char *path, int rc) {
    char abs[PATH_MAX];
    if (rc == 0 && resolve(dirfd, path, abs)) emit(R_UNLINK, -1, 0, abs, strlen(abs), NULL, 0, 0);
}

int unlink(const char *path) {
    REAL(unlink, int, const char *);
    if (!active()) return real_unlink(path);
    pthread_mutex_lock(&lock);
    inside = 1;
    int rc = real_unlink(path);
    int saved = errno;
    unlinked(AT_FDCWD, path, rc);
    inside = 0;
    pthread_mutex_unlock(&lock);
    errno = saved;
    return rc;
}

int unlinkat(int dirfd, const char *path, int flags) {
    REAL(unlinkat, int, int, const char *, int);
    if (!active()) return real_unlinkat(dirfd, path, flags);
    pthread_mutex_lock(&lock);
    inside = 1;
    int rc = real_unlinkat(dirfd, path, flags);
    int saved = errno;
    unlinked(dirfd, path, rc);
    inside = 0;
    pthread_mutex_unlock(&lock);
    errno = saved;
    return rc;
}

static void renamed(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int rc) {
    char a[PATH_MAX], b[PATH_MAX];
    if (rc != 0) return;
    int ia = resolve(olddirfd, oldpath, a), ib = resolve(newdirfd, newpath, b);
    if (ia || ib) emit(R_RENAME, -1, strlen(a) + 1, a, strlen(a) + 1, b, strlen(b), 0);
}

int rename(const char *oldpath, const char *newpath) {
    REAL(rename, int, const char *, const char *);
    if (!active()) return real_rename(oldpath, newpath);
    pthread_mutex_lock(&lock);
    inside = 1;
    int rc = real_rename(oldpath, newpath);
    int saved = errno;
    renamed(AT_FDCWD, oldpath, AT_FDCWD, newpath, rc);
    inside = 0;
    pthread_mutex_unlock(&lock);
    errno = saved;
    return rc;
}

int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    REAL(renameat, int, int, const char *, int, const char *);
    if (!active()) return real_renameat(olddirfd, oldpath, newdirfd, newpath);
    pthread_mutex_lock(&lock);
    inside = 1;
    int rc = real_renameat(olddirfd, oldpath, newdirfd, newpath);
    int saved = errno;
    renamed(olddirfd, oldpath, newdirfd, newpath, rc);
    inside = 0;
    pthread_mutex_unlock(&lock);
    errno = saved;
    return rc;
}
