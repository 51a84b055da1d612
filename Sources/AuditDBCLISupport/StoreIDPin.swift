public import AuditDB

/// The store id a command line pins: `--store-id`, else `AUDITDB_STORE_ID`.
///
/// Both `auditdb` and `auditdb-fleet ship` read the pin the same way, so a deployment that sets
/// `AUDITDB_STORE_ID` once gets the same check from either tool.
public enum StoreIDPin {
    /// The pinned id, or nil when neither the option nor the variable gives one.
    ///
    /// An empty variable counts as unset; an empty option does not (`--store-id ""` would
    /// otherwise switch off the pin `AUDITDB_STORE_ID` sets) and is refused like any other value
    /// that is not 32 hex digits.
    /// - Throws: ``AuditError`` `invalidInput` naming the option or variable and the value given.
    public static func resolve(option: String?, environment: [String: String]) throws -> StoreID? {
        let source = option != nil ? "--store-id" : "AUDITDB_STORE_ID"
        guard let hex = option ?? environment["AUDITDB_STORE_ID"], !hex.isEmpty || option != nil else { return nil }
        guard let id = StoreID(hex: hex) else {
            throw AuditError(.invalidInput, "\(source) must be 32 hex digits, the id `auditdb init` printed (got \(OutputEscaping.jsonQuoted(hex)))",
                             field: source)
        }
        return id
    }
}
