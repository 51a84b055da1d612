import Foundation
import Testing

@testable import AuditDB

/// No action can pass for one of AuditDB's own entries (scan records, key declarations, runs).
@Suite("Reserved actions")
struct IdentifierTests {
    @Test("look-alikes of the reserved prefix are reserved too",
          arguments: ["auditdb.scan", "AuditDB.scan", "auditdb.\u{301}scan", "auditdb\u{200B}.scan", "audit\u{0301}db.key.compromised",
                      "\u{430}uditdb.scan", "auditdb\u{2024}scan", "\u{FF41}uditdb.scan", "AUD\u{0406}TDB.scan", "au\u{0501}itdb.hold.placed",
                      "auditd\u{044C}.scan", "\u{1D41A}uditdb.scan"])
    func reservedLookAlikes(action: String) {
        #expect(throws: AuditError.self) { try AuditStore.checkNotReserved(AuditEvent(actor: "a", action: action)) }
    }

    @Test("actions that merely start alike are not reserved")
    func notReserved() throws {
        try AuditStore.checkNotReserved(AuditEvent(actor: "a", action: "auditd.scan"))
        try AuditStore.checkNotReserved(AuditEvent(actor: "a", action: "audit.db"))
        // Actions written in other scripts are not look-alikes of the prefix.
        for action in ["просмотр.документа", "ανάγνωση.εγγράφου", "审计日志记录事件类型", "auditoría.lectura"] {
            try AuditStore.checkNotReserved(AuditEvent(actor: "a", action: action))
        }
    }
}
