/// Whose fields ``AuditStore/erase(_:fields:paths:reason:skippingLegacyRows:)`` erases.
public enum ErasureSubject: Sendable, Hashable {
    /// Every entry whose `actor` is exactly this text.
    case actor(String)
    /// Every entry of this tenant.
    case tenant(String)
    /// Every entry about this resource (`type` nil: any type).
    case resource(type: String?, id: String)
    /// Exactly these seqs.
    case seqs([Int64])

    /// The kind recorded in the erasure entry (never the value).
    var kind: String {
        switch self {
        case .actor: "actor"
        case .tenant: "tenant"
        case .resource: "resource"
        case .seqs: "seqs"
        }
    }

    /// The refusal of an erasure by seqs that names `missing`, seqs not in the log.
    static func notInTheLog(_ missing: [Int64]) -> AuditError {
        let one = missing.count == 1
        let listed = missing.prefix(20).map(String.init).joined(separator: ", ") + (missing.count > 20 ? ", … (\(missing.count) in all)" : "")
        return AuditError(.invalidInput, "\(one ? "seq" : "seqs") \(listed) \(one ? "is" : "are") not in the log (expired: their values left "
                            + "with the row; or never written); nothing was erased. Leave \(one ? "it" : "them") out of the seqs and run the erasure again",
                          field: "seqs")
    }
}
