#ifndef AUDITDB_COPENSSLCRYPTO_SHIM_H
#define AUDITDB_COPENSSLCRYPTO_SHIM_H
// OpenSSL's libcrypto. CAuditCore depends on this target for the header search path and the
// link flags (pkg-config libcrypto); its C files include <openssl/sha.h> themselves. They use
// the low-level SHA256_* functions, which OpenSSL 3 marks deprecated (see audit_core.c).
// If this include fails with "'openssl/sha.h' file not found", install libssl-dev
// (`apt-get install -y libssl-dev`, or run `make setup`).
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/crypto.h>
#include <openssl/sha.h>
#endif
