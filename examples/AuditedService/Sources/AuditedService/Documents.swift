import Foundation
import Hummingbird
import NIOCore

/// A document id: 1–64 characters of `A-Z a-z 0-9 - _`. Anything else in the path is not an id
/// (the handler answers 400, and the audit event carries no resource id).
struct DocumentID: Sendable, Hashable {
    let rawValue: String

    init?(_ text: String) {
        guard (1...64).contains(text.utf8.count),
              text.utf8.allSatisfy({ byte in
                  (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                      || byte == 0x2D || byte == 0x5F
              })
        else { return nil }
        rawValue = text
    }
}

/// The service's business: documents kept in memory. It is deliberately trivial; what matters in
/// this example is that every request to it is audited (``AuditMiddleware``).
///
/// Changes go in two steps, so that none happens unaudited: the handler reserves (a new id, or
/// the document to delete) and answers; the change itself is a ``PendingEffects`` entry that
/// ``AuditMiddleware`` commits once the request's event is recorded, or cancels.
actor DocumentLibrary {
    private var documents: [DocumentID: String] = [:]
    private var nextNumber = 1
    /// Documents a DELETE answered 204 for, whose event is not recorded yet.
    private var deleting: Set<DocumentID> = []

    /// A new id, never handed out twice (an id whose creation was cancelled is not reused).
    func reserveID() -> DocumentID {
        defer { nextNumber += 1 }
        return DocumentID("doc-\(nextNumber)")!
    }

    func store(_ text: String, at id: DocumentID) { documents[id] = text }

    func read(_ id: DocumentID) -> String? { documents[id] }

    /// Whether `id` exists and no other DELETE holds it; if so, this one does.
    func reserveDeletion(_ id: DocumentID) -> Bool {
        guard documents[id] != nil, !deleting.contains(id) else { return false }
        deleting.insert(id)
        return true
    }

    func finishDeletion(_ id: DocumentID, commit: Bool) {
        deleting.remove(id)
        if commit { documents.removeValue(forKey: id) }
    }
}

extension DocumentLibrary {
    /// `GET /documents/{id}`, `POST /documents` (body: the text, at most 64 KiB),
    /// `DELETE /documents/{id}` (admins only). Every route needs a bearer token (401 without).
    nonisolated func addRoutes(to router: Router<ServiceRequestContext>) {
        router.get("/documents/{id}") { _, context -> Response in
            _ = try Self.caller(context)
            guard let text = await self.read(try Self.id(context)) else { throw HTTPError(.notFound) }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        router.post("/documents") { request, context -> Response in
            _ = try Self.caller(context)
            let text = String(buffer: try await request.body.collect(upTo: 65_536))
            let id = await self.reserveID()
            await context.effects.add(commit: { await self.store(text, at: id) })
            return Response(status: .created, headers: [.location: "/documents/\(id.rawValue)"],
                            body: .init(byteBuffer: ByteBuffer(string: id.rawValue)))
        }
        router.delete("/documents/{id}") { _, context -> Response in
            guard try Self.caller(context).isAdmin else { throw HTTPError(.forbidden) }
            let id = try Self.id(context)
            guard await self.reserveDeletion(id) else { throw HTTPError(.notFound) }
            await context.effects.add(commit: { await self.finishDeletion(id, commit: true) },
                                      cancel: { await self.finishDeletion(id, commit: false) })
            return Response(status: .noContent)
        }
    }

    private static func caller(_ context: ServiceRequestContext) throws -> Principal {
        guard let principal = context.principal else {
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer"])
        }
        return principal
    }

    private static func id(_ context: ServiceRequestContext) throws -> DocumentID {
        guard let id = context.parameters.get("id").flatMap(DocumentID.init) else {
            throw HTTPError(.badRequest, message: "a document id is 1-64 characters of A-Z a-z 0-9 - _")
        }
        return id
    }
}
