package import AuditDB
import Foundation
import Synchronization

/// The smallest HTTP/1.1 server a Prometheus scrape needs, for `auditdb scan --metrics-address`
/// and `auditdb-fleet audit --metrics-address` (a target of its own so both executables share it):
/// `GET /metrics` answers 200 with what `render` returns; any other request 404, a malformed or
/// oversized one 400. Up to ``maximumConnections`` connections are answered at once, each on a
/// thread of its own and closed after its answer.
///
/// It runs on threads of its own (blocking POSIX sockets), never on Swift's cooperative pool,
/// and keeps SwiftNIO out of the `auditdb` executable. A request may be at most
/// ``maximumRequestBytes`` long, and a client gets ``ioTimeoutSeconds`` in all to send it (not per
/// read: a client that trickles a byte at a time is cut off as one that sends nothing) and as
/// long to take the answer, so a stalled or slow client holds one connection for a few seconds
/// and never keeps a scraper waiting. This is the only file of the CLIs that calls the socket API.
package final class MetricsEndpoint: Sendable {
    /// The longest request head read; a scrape's is a few hundred bytes.
    static let maximumRequestBytes = 8_192
    /// The time a client gets to send its whole request, and to take the answer.
    static let ioTimeoutSeconds = 5
    /// Connections answered at once; more wait in the listen backlog.
    static let maximumConnections = 16
    /// Free answering slots. Made at 0 and signalled up to its capacity: libdispatch stops the
    /// process when a semaphore is freed holding less than the value it was made with.
    private let slots: DispatchSemaphore = {
        let semaphore = DispatchSemaphore(value: 0)
        for _ in 0..<maximumConnections { semaphore.signal() }
        return semaphore
    }()

    /// The address actually bound, `HOST:PORT` (the system's choice when port 0 was asked for).
    package let boundAddress: String
    private let listener: Int32
    private let render: @Sendable () -> [UInt8]
    private let stopping = Atomic<Bool>(false)
    private let started = Atomic<Bool>(false)

    /// Binds and listens on `address` (`127.0.0.1:9464`, `0.0.0.0:9464`, `[::1]:9464`; numeric
    /// hosts only). Serving starts with ``start()``.
    ///
    /// - Throws: ``AuditError`` `invalidInput` for a malformed address or one that cannot be
    ///   bound (in use, not local), naming it.
    package init(address: String, render: @escaping @Sendable () -> [UInt8]) throws(AuditError) {
        let (host, port) = try Self.split(address)
        var hints = addrinfo()
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, port, &hints, &found) == 0, let info = found else {
            throw AuditError(.invalidInput, "--metrics-address \(address): the host must be a numeric IPv4 or [IPv6] address, e.g. 127.0.0.1:9464", field: "--metrics-address")
        }
        defer { freeaddrinfo(found) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Self.failure("cannot open a socket for", address) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0, listen(fd, 16) == 0 else {
            let error = Self.failure("cannot listen on", address)
            close(fd)
            throw error
        }
        listener = fd
        self.render = render
        boundAddress = Self.localAddress(of: fd) ?? address
    }

    /// Serves on a new thread until ``stop()``.
    package func start() {
        guard !started.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let thread = Thread { [self] in
            serve()
            close(listener)
        }
        thread.name = "auditdb-metrics"
        thread.start()
    }

    /// Stops accepting. Does not wait: an answer in progress ends within the I/O timeout, and
    /// the serving thread then closes the listening socket.
    package func stop() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        shutdown(listener, Int32(SHUT_RDWR))  // wakes the thread blocked in accept()
        if !started.load(ordering: .acquiring) { close(listener) }
    }

    private func serve() {
        while !stopping.load(ordering: .acquiring) {
            let connection = accept(listener, nil, nil)
            if connection < 0 {
                if stopping.load(ordering: .acquiring) { return }
                if errno == EINTR || errno == ECONNABORTED { continue }
                usleep(100_000)  // out of descriptors or memory: back off, then try again
                continue
            }
            slots.wait()
            let thread = Thread { [self] in
                answer(connection)
                close(connection)
                slots.signal()
            }
            thread.name = "auditdb-metrics-connection"
            thread.start()
        }
    }

    private func answer(_ connection: Int32) {
        var timeout = timeval(tv_sec: Self.ioTimeoutSeconds, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard let head = readHead(connection) else {
            send(connection, status: "400 Bad Request", body: Array("bad request\n".utf8))
            return
        }
        let requestLine = head.prefix { $0 != 0x0D && $0 != 0x0A }.split(separator: 0x20)
        let isScrape = requestLine.count == 3 && requestLine[0].elementsEqual("GET".utf8)
            && (requestLine[1].elementsEqual("/metrics".utf8) || requestLine[1].starts(with: "/metrics?".utf8))
        if isScrape {
            send(connection, status: "200 OK", body: render(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        } else {
            send(connection, status: "404 Not Found", body: Array("not found: this endpoint serves GET /metrics\n".utf8))
        }
    }

    /// The request head up to the blank line; nil if the client sent more than
    /// ``maximumRequestBytes`` without one, closed early or timed out.
    private func readHead(_ connection: Int32) -> [UInt8]? {
        var head: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 2_048)
        let deadline = ContinuousClock.now + .seconds(Self.ioTimeoutSeconds)
        while head.count < Self.maximumRequestBytes {
            // Each read waits only for what is left of the request's time.
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return nil }
            let micros = max(1_000, left.components.seconds * 1_000_000 + left.components.attoseconds / 1_000_000_000_000)
            var timeout = timeval(tv_sec: Int(micros / 1_000_000), tv_usec: Int(micros % 1_000_000))
            setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let count = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return nil }
            head += buffer[0..<count]
            if head.count >= 4, head.firstRange(of: [0x0D, 0x0A, 0x0D, 0x0A]) != nil { return head }
        }
        return nil
    }

    private func send(_ connection: Int32, status: String, body: [UInt8], contentType: String = "text/plain; charset=utf-8") {
        let header = "HTTP/1.1 \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n"
            + "Connection: close\r\n\r\n"
        let bytes = Array(header.utf8) + body
        var offset = 0
        while offset < bytes.count {
            // MSG_NOSIGNAL: a scraper that hung up must not kill the scanner with SIGPIPE.
            let written = bytes.withUnsafeBytes {
                Foundation.send(connection, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
            }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            offset += written
        }
    }

    /// `HOST:PORT` or `[V6HOST]:PORT` into host and port text.
    private static func split(_ address: String) throws(AuditError) -> (String, String) {
        var host = Substring(address), port = Substring("")
        if let colon = address.lastIndex(of: ":") {
            host = address[..<colon]
            port = address[address.index(after: colon)...]
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty, let number = Int(port), (0...65_535).contains(number) else {
            throw AuditError(.invalidInput, "--metrics-address takes HOST:PORT, e.g. 127.0.0.1:9464; got \"\(address)\"", field: "--metrics-address")
        }
        return (String(host), String(port))
    }

    private static func failure(_ what: String, _ address: String) -> AuditError {
        AuditError(.invalidInput, "\(what) \(address): \(String(cString: strerror(errno))); choose another --metrics-address",
                   field: "--metrics-address")
    }

    private static func localAddress(of fd: Int32) -> String? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { return nil }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST)), service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let resolved = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &host, socklen_t(host.count), &service, socklen_t(service.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard resolved == 0 else { return nil }
        func text(_ characters: [CChar]) -> String {
            String(decoding: characters.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        let hostText = text(host), serviceText = text(service)
        return hostText.contains(":") ? "[\(hostText)]:\(serviceText)" : "\(hostText):\(serviceText)"
    }
}
