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
actor DocumentLibrary {
    private var documents: [DocumentID: String] = [:]
    private var nextNumber = 1

    func create(_ text: String) -> DocumentID {
        defer { nextNumber += 1 }
        let id = DocumentID("doc-\(nextNumber)")!
        documents[id] = text
        return id
    }

    func read(_ id: DocumentID) -> String? { documents[id] }

    func delete(_ id: DocumentID) -> Bool { documents.removeValue(forKey: id) != nil }
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
            let body = try await request.body.collect(upTo: 65_536)
            let id = await self.create(String(buffer: body))
            return Response(status: .created, headers: [.location: "/documents/\(id.rawValue)"],
                            body: .init(byteBuffer: ByteBuffer(string: id.rawValue)))
        }
        router.delete("/documents/{id}") { _, context -> Response in
            guard try Self.caller(context).isAdmin else { throw HTTPError(.forbidden) }
            guard await self.delete(try Self.id(context)) else { throw HTTPError(.notFound) }
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
