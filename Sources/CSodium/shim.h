#ifndef AUDITDB_CSODIUM_SHIM_H
#define AUDITDB_CSODIUM_SHIM_H
// If this include fails with "'sodium.h' file not found", install libsodium-dev
// (`apt-get install -y libsodium-dev`, or run `make setup`).
#include <sodium.h>
#endif
