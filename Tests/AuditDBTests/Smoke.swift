import Testing
@testable import AuditDB
@Test func placeholder() { #expect(Bool(true)) }
