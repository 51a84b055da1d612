import AuditDB
import Synchronization
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The request context of this service: Hummingbird's core context, plus who is calling.
struct ServiceRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// Set by ``AuditMiddleware`` from the `Authorization` header; nil for an anonymous caller.
    var principal: Principal?
    /// The caller's IP address, recorded as the event's `source`.
    let remoteAddress: String?
    /// The changes the handler makes only once the request's event is recorded.
    let effects = PendingEffects()

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        principal = nil
        remoteAddress = source.channel.remoteAddress?.ipAddress
    }
}

/// What a handler changes, held back until its request's audit event is recorded: then
/// ``AuditMiddleware`` commits it; if the event cannot be recorded, it cancels it and the caller
/// gets 503. So no change ever happens unaudited (fail closed), and none is visible to other
/// requests before its event is in the store.
actor PendingEffects {
    private var pending: [(commit: @Sendable () async -> Void, cancel: @Sendable () async -> Void)] = []

    /// Registers a change: `commit` runs once the event is recorded, `cancel` if it cannot be.
    func add(commit: @escaping @Sendable () async -> Void, cancel: @escaping @Sendable () async -> Void = {}) {
        pending.append((commit, cancel))
    }

    /// Commits (`recorded`: the request succeeded and its event is in the store) or cancels
    /// every registered change, in order, once.
    func settle(recorded: Bool) async {
        let changes = pending
        pending = []
        for change in changes { await recorded ? change.commit() : change.cancel() }
    }
}

extension HTTPField.Name {
    /// The correlation id of a request: taken from the caller, or made up, and echoed back.
    static let requestID = HTTPField.Name("X-Request-ID")!
}

/// Records one audit event for every request it wraps, after the handler has answered and
/// before the answer goes out, and only then lets the handler's changes happen
/// (``PendingEffects``):
///
/// - **actor**: the principal of the `Authorization: Bearer` token, else `anonymous`;
/// - **action**: the method and the route template (`DELETE /documents/{id}`), never the raw
///   path (which is unbounded and chosen by the caller); `NotFound` for unknown routes;
/// - **outcome**: from the status: 2xx/3xx `success`, 401/403 `denied`, other 4xx `failure`,
///   5xx `error`;
/// - **correlationId**: the `X-Request-ID` header (a new UUID when absent or unusable), echoed
///   in the response.
///
/// Requests that change state (POST, PUT, PATCH, DELETE) are recorded as `critical`: the store
/// fsyncs them before `append` returns, so the response is sent only once the event is durable.
/// Reads are recorded with the store's relaxed durability: committed, made durable by the next
/// group commit or at shutdown. If the event cannot be recorded, the caller gets 503 and no
/// other answer, and the handler's changes are cancelled — the service fails closed rather than
/// act unaudited.
struct AuditMiddleware: RouterMiddleware {
    typealias Context = ServiceRequestContext

    let store: AuditStore
    let tokens: TokenTable
    let logger: Logger
    /// Whether the last event failed to be recorded (read by `/health`).
    let appends: AppendHealth

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        var context = context
        context.principal = tokens.principal(authorization: request.headers[.authorization])
        let requestID = Self.requestID(request.headers[.requestID])
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            do {
                response = try error.response(from: request, context: context)
            } catch {
                logger.error("handler failed", metadata: ["requestID": "\(requestID)", "error": "\(error)"])
                response = Response(status: .internalServerError)
            }
        } catch {
            logger.error("handler failed", metadata: ["requestID": "\(requestID)", "error": "\(error)"])
            response = Response(status: .internalServerError)
        }
        // A created document's id is in its answer (201, Location), not in the request's path.
        let created = response.status == .created
            ? response.headers[.location].flatMap { $0.hasPrefix("/documents/") ? DocumentID(String($0.dropFirst("/documents/".count))) : nil }
            : nil
        let event = Self.event(for: request, context: context, status: response.status, requestID: requestID, created: created)
        // A change happens only for a request that succeeded (2xx/3xx) and whose event is recorded;
        // a handler that registered one and then failed has it cancelled.
        let succeeded = (200..<400).contains(response.status.code)
        do {
            try await store.append(event)
            appends.succeeded()
        } catch {
            // A request cancelled (its client went away) says nothing about the store.
            if (error as? AuditError)?.code != .cancelled { appends.failed() }
            await context.effects.settle(recorded: false)
            logger.error("audit event not recorded; the request's changes are cancelled, answering 503",
                         metadata: ["requestID": "\(requestID)", "error": "\(error)"])
            var failed = Response(status: .serviceUnavailable)
            failed.headers[.requestID] = requestID
            return failed
        }
        await context.effects.settle(recorded: succeeded)
        response.headers[.requestID] = requestID
        return response
    }

    static func event(for request: Request, context: Context, status: HTTPResponse.Status, requestID: String,
                      created: DocumentID? = nil) -> AuditEvent {
        let method = request.method
        let critical = ([.post, .put, .patch, .delete] as [HTTPRequest.Method]).contains(method)
        let route = context.endpointPath ?? "NotFound"
        return AuditEvent(
            actor: context.principal?.actor ?? "anonymous",
            action: "\(method.rawValue) \(route)",
            resourceType: route.hasPrefix("/documents") ? "document" : nil,
            resourceId: (created ?? context.parameters.get("id").flatMap(DocumentID.init))?.rawValue,
            outcome: outcome(status),
            severity: critical ? .critical : .info,
            correlationId: requestID,
            source: context.remoteAddress,
            details: ["status": .int(Int64(status.code))])
    }

    static func outcome(_ status: HTTPResponse.Status) -> AuditOutcome {
        switch status.code {
        case 200..<400: .success
        case 401, 403: .denied
        case 400..<500: .failure
        default: .error
        }
    }

    /// The caller's request id if it is 1–128 characters of `A-Z a-z 0-9 - _ . :`, else a new
    /// UUID: the id goes into the log and back into a header, so nothing else is taken.
    static func requestID(_ given: String?) -> String {
        if let given, (1...128).contains(given.utf8.count),
           given.utf8.allSatisfy({ byte in
               (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                   || byte == 0x2D || byte == 0x5F || byte == 0x2E || byte == 0x3A
           })
        {
            return given
        }
        return UUID().uuidString.lowercased()
    }
}

/// Whether audited requests are being answered 503 now: the last append failed (a lock held past
/// the busy timeout, a full disk, a file-size limit) less than ``window`` ago. `/health` reports
/// it, so that a load balancer stops sending requests the service can only refuse; the next
/// append that succeeds clears it, and so does the window's end (a balancer that took the
/// instance out sends nothing that could succeed, and must be able to try it again).
final class AppendHealth: Sendable {
    static let window: Duration = .seconds(30)
    private let lastFailure = Mutex<ContinuousClock.Instant?>(nil)
    func failed() { lastFailure.withLock { $0 = .now } }
    func succeeded() { lastFailure.withLock { $0 = nil } }
    var isFailing: Bool { lastFailure.withLock { $0 }.map { ContinuousClock.now - $0 < Self.window } ?? false }
}
