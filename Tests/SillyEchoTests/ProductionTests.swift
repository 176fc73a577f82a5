import Foundation
import NIOCore
import Prometheus
import Silly
import SillyMetrics
import SillyTestSupport
import Synchronization
import Testing

/// `GET /metrics` over a plain TCP connection; the samples by `name{labels}`.
func scrape(_ address: String, path: String = "/metrics") async throws -> (status: String, samples: [String: Double], body: String) {
    let conn = try await TCP.connect(address)
    try await conn.write("GET \(path) HTTP/1.1\r\nHost: \(address)\r\nConnection: close\r\n\r\n")
    let response = try await conn.readToEnd()
    await conn.close()
    let text = String(buffer: response)
    let status = text.components(separatedBy: "\r\n").first ?? ""
    let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
    var samples: [String: Double] = [:]
    for line in body.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
        samples[String(line[..<space])] = value
    }
    return (status, samples, body)
}

/// The metrics address a `silly-echo --metrics-addr` logged.
func metricsAddress(of server: ServerProcess) async throws -> String {
    #expect(await server.waitForLog("/metrics"), "log: \(server.log) \(server.errorLog)")
    let line = try #require(server.log.split(separator: "\n").first { $0.contains("Metrics on http://") })
    let rest = line[line.range(of: "Metrics on http://")!.upperBound...]
    return String(rest.prefix { $0 != "/" })
}

@Suite("silly-echo as a service: PROXY protocol and Prometheus metrics")
struct ProductionTests {
    @Test("--proxy-protocol: accept and close lines name the original client; a bad header is logged and counted")
    func proxyProtocol() async throws {
        // A header timeout no test-suite load can reach.
        let server = try ServerProcess(["--proxy-protocol", "--proxy-header-timeout", "120s"])
        let address = try await server.address()
        let conn = try await TCP.connect(address)
        // Header and first line in one segment, as a proxy may send them.
        try await conn.write("PROXY TCP4 203.0.113.7 192.0.2.1 4242 9999\r\nhello\n")
        do {
            #expect(try await conn.line() == "hello\n")
        } catch {
            Issue.record("\(error); server log: \(server.log)")
        }
        #expect(await server.waitForLog("Accept connection 203.0.113.7:4242, connections: 1"))
        await conn.close()
        #expect(await server.waitForLog("Close connection 203.0.113.7:4242 (client closed): received 6 bytes"))

        // A load balancer's health check (v2 LOCAL): served, but neither logged nor counted as a client.
        let check = try await TCP.connect(address)
        try await check.write([0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0x00, 0x00] + Array("ping\n".utf8))
        #expect(try await check.line() == "ping\n")
        let checkPeer = try #require(check.localAddress)
        await check.close()

        let plain = try await TCP.connect(address)
        let peer = try #require(plain.localAddress)
        try await plain.write("hello\n")
        await #expect(throws: SillyError.self) { try await plain.read(until: "\n", timeout: patience) }
        await plain.close()
        #expect(await server.waitForLog("connection from \(peer) to \(address) refused: no PROXY protocol header"))
        #expect(await server.stop() == 0)
        #expect(server.log.contains("Shutdown complete. Totals: connections open 0, accepted 1, rejected 0; received 6 bytes, sent 6 bytes, messages 1; errors: proxy_header 1; health checks 1"),
                "\(server.log)")
        #expect(!server.log.contains("Accept connection \(checkPeer)"))
    }

    @Test("--max-connections bounds health checks (PROXY LOCAL) too: a full server turns them away, and they take places from clients")
    func healthChecksWithinLimit() async throws {
        let server = try ServerProcess(["--proxy-protocol", "--max-connections", "2", "--proxy-header-timeout", "120s"])
        let address = try await server.address()
        let local: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0x00, 0x00]
        func connect(_ header: [UInt8], _ line: String) async throws -> TCPConnection {
            let conn = try await TCP.connect(address)
            try await conn.write(header + Array(line.utf8))
            return conn
        }
        // One client and one health check fill the two places.
        let client = try await connect(Array("PROXY TCP4 203.0.113.7 192.0.2.1 4242 9999\r\n".utf8), "one\n")
        #expect(try await client.line() == "one\n")
        let check = try await connect(local, "ping\n")
        #expect(try await check.line() == "ping\n")
        // Then neither another client nor another health check gets in.
        let lateClient = try await connect(Array("PROXY TCP4 203.0.113.8 192.0.2.1 4243 9999\r\n".utf8), "two\n")
        #expect(try await lateClient.line().hasPrefix("Server is full (2 connections)"))
        for _ in 0..<5 {
            let lateCheck = try await connect(local, "ping\n")
            #expect(try await lateCheck.line().hasPrefix("Server is full (2 connections)"))
            await lateCheck.close()
        }
        // A place freed by the health check is a client's again.
        await check.close()
        var admitted = false
        var turnedAway = 0  // while the health check's handler has not yet seen its close
        for attempt in 0..<100 where !admitted {
            let next = try await connect(Array("PROXY TCP4 203.0.113.9 192.0.2.1 \(5000 + attempt) 9999\r\n".utf8), "three\n")
            admitted = try await next.line() == "three\n"
            await next.close()
            if !admitted {
                turnedAway += 1
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(admitted)
        await lateClient.close()
        await client.close()
        #expect(await server.stop() == 0)
        #expect(server.log.contains("rejected \(6 + turnedAway);"), "\(server.log)")
    }

    @Test("--metrics-addr: counters move by what the traffic did; lifetimes are recorded; other paths get 404")
    func metrics() async throws {
        let server = try ServerProcess(["--metrics-addr", "127.0.0.1:0", "--max-line", "100"])
        let address = try await server.address()
        let metrics = try await metricsAddress(of: server)

        let before = try await scrape(metrics)
        #expect(before.status == "HTTP/1.1 200 OK")
        #expect(before.samples["silly_echo_messages_total"] ?? 0 == 0)

        // Traffic on a connection that stays open while the endpoint is scraped.
        let conn = try await TCP.connect(address)
        var sent = 0
        for index in 0..<10 {
            let line = "line number \(index)\n"
            try await conn.write(line)
            #expect(try await conn.line() == line)
            sent += line.utf8.count
        }
        var during: [String: Double] = [:]
        #expect(await eventually {
            during = (try? await scrape(metrics).samples) ?? [:]
            return during["silly_echo_messages_total"] == 10
        }, "\(during)")
        #expect(during["silly_echo_received_bytes_total"] == Double(sent))
        #expect(during["silly_echo_sent_bytes_total"] == Double(sent))
        #expect(during["silly_echo_connections_open"] == 1)
        #expect(during["silly_echo_connections_accepted_total"] == 1)

        // A line too long, and a reset: each ends its connection and is counted by kind.
        let long = try await TCP.connect(address)
        try await long.write(String(repeating: "x", count: 200) + "\n")
        await #expect(throws: SillyError.self) { try await long.read(until: "\n", timeout: patience) }
        await long.close()
        let reset = RawSocket()
        #expect(reset.connect(port: Int(address.split(separator: ":").last!)!))
        _ = reset.sendAvailable(Array("half a line".utf8))
        // Its accept line is the second to count two open connections (the long line's was the first).
        #expect(await eventually { server.log.components(separatedBy: ", connections: 2\n").count == 3 })
        reset.resetOnClose()
        _ = consume reset
        await conn.close()

        var after: [String: Double] = [:]
        #expect(await eventually {
            after = (try? await scrape(metrics).samples) ?? [:]
            return after["silly_echo_connections_open"] == 0
        }, "\(after)")
        #expect(after["silly_echo_errors_total{kind=\"line_too_long\"}"] == 1)
        #expect(after["silly_echo_errors_total{kind=\"reset\"}"] == 1)
        #expect(after["silly_echo_errors_total{kind=\"idle_timeout\"}"] == 0)
        #expect(after["silly_echo_connections_accepted_total"] == 3)
        #expect(after["silly_echo_messages_total"] == 10)
        #expect(after["silly_echo_connection_duration_seconds_count"] == 3)
        #expect(after["silly_echo_connection_duration_seconds_bucket{le=\"+Inf\"}"] == 3)

        let missing = try await scrape(metrics, path: "/")
        #expect(missing.status == "HTTP/1.1 404 Not Found")

        #expect(await server.stop() == 0)
        // The same counters feed the totals line.
        #expect(server.log.contains(
            "Totals: connections open 0, accepted 3, rejected 0; received \(sent) bytes, sent \(sent) bytes, messages 10; errors: line_too_long 1, reset 1"),
            "\(server.log)")
    }

    @Test("--metrics-addr: the endpoint still answers while SIGTERM's drain waits for a connection, and counts it open")
    func metricsDuringDrain() async throws {
        let server = try ServerProcess(["--metrics-addr", "127.0.0.1:0", "--shutdown-grace", "300s", "--idle-timeout", "0"])
        let address = try await server.address()
        let metrics = try await metricsAddress(of: server)
        let conn = try await clientWithEchoesBackedUp(at: address)
        kill(server.process.processIdentifier, SIGTERM)
        #expect(await server.waitForLog("Shutting down: 1 connection has"))
        let during = try await scrape(metrics)
        #expect(during.status == "HTTP/1.1 200 OK")
        #expect(during.samples["silly_echo_connections_open"] == 1)
        kill(server.process.processIdentifier, SIGINT)  // the second signal: stop now
        #expect(await server.exitStatus() == 0)
        await #expect(throws: (any Error).self) { try await scrape(metrics) }
        await conn.close()
    }

    @Test("--metrics-addr: an idle timeout is counted as one")
    func idleTimeoutMetric() async throws {
        let server = try ServerProcess(["--metrics-addr", "127.0.0.1:0", "--idle-timeout", "200ms"])
        let address = try await server.address()
        let metrics = try await metricsAddress(of: server)
        let idle = try await TCP.connect(address)
        await #expect(throws: SillyError.endOfStream) { try await idle.read(until: "\n", timeout: patience) }
        await idle.close()
        var samples: [String: Double] = [:]
        #expect(await eventually {
            samples = (try? await scrape(metrics).samples) ?? [:]
            return samples["silly_echo_connections_open"] == 0 && samples["silly_echo_connections_accepted_total"] == 1
        }, "\(samples)")
        #expect(samples["silly_echo_errors_total{kind=\"idle_timeout\"}"] == 1)
        #expect(samples["silly_echo_connection_duration_seconds_count"] == 1)
        #expect(await server.stop() == 0)
    }

    @Test("a metrics client that never finishes its request is closed once it has been quiet for 30 s")
    func metricsClientGoesQuiet() async throws {
        let server = try ServerProcess(["--metrics-addr", "127.0.0.1:0"])
        let metrics = try await metricsAddress(of: server)
        let client = try await TCP.connect(metrics)
        try await client.write("GET /metr")
        // The server ends the connection (before: it held it, and its descriptor, for good).
        #expect(try await client.readToEnd().readableBytes == 0)
        await client.close()
        #expect(await server.stop() == 0)
    }

    @Test("a malformed metrics request gets 400 and its connection closed, not held until the idle timeout")
    func metricsMalformedRequest() async throws {
        let server = try ServerProcess(["--metrics-addr", "127.0.0.1:0"])
        let metrics = try await metricsAddress(of: server)
        let client = try await TCP.connect(metrics)
        try await client.write("\u{0}garbage\r\n\r\n")
        #expect(try await client.line() == "HTTP/1.1 400 Bad Request\r\n")
        // Well before the 30 s idle timeout would end it.
        let rest = try await client.readToEnd(timeout: .seconds(15))
        #expect(String(buffer: rest).contains("Connection: close") || String(buffer: rest).contains("connection: close"))
        await client.close()
        #expect(try await scrape(metrics).status == "HTTP/1.1 200 OK")
        #expect(await server.stop() == 0)
    }

    @Test("a request with more bytes behind it, malformed or 'Connection: close': the answer arrives, then a clean end, not a reset",
          arguments: [
            ("\u{0}garbage\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n", "onnection: close"),
            ("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1 200 OK\r\n", "silly_echo_connections_open"),
          ])
    func metricsAnswerThenMore(request: String, status: String, content: String) async throws {
        let server = try ServerProcess(["--metrics-addr", "127.0.0.1:0"])
        let metrics = try await metricsAddress(of: server)
        let client = try await TCP.connect(metrics)
        // More than the server reads before it answers: closed once the answer was written, its
        // socket would still hold some, and answer with a reset (before: readToEnd failed with
        // connectionReset).
        var bytes = ByteBuffer(string: request)
        bytes.writeRepeatingByte(UInt8(ascii: "x"), count: 256 * 1024)
        try await client.write(bytes)
        let answer = String(buffer: try await client.readToEnd())
        #expect(answer.hasPrefix(status), "\(answer.prefix(200))")
        #expect(answer.contains(content), "\(answer.prefix(400))")
        await client.close()
        #expect(try await scrape(metrics).status == "HTTP/1.1 200 OK")
        #expect(await server.stop() == 0)
    }

    /// A `PrometheusEndpoint` run in this process on a free port, and a first connection to
    /// it once it listens; cancel `serving` to stop it.
    private static func startEndpoint(
        maxConnections: Int = 64, idleTimeout: Duration
    ) async throws -> (address: String, serving: Task<Void, any Error>, first: TCPConnection) {
        let address = "127.0.0.1:\(RawSocket.freePortBelowEphemeralRange())"
        let endpoint = PrometheusEndpoint(
            address: address, registry: PrometheusCollectorRegistry(), maxConnections: maxConnections, idleTimeout: idleTimeout)
        let serving = Task { try await endpoint.run() }
        var first: TCPConnection?
        #expect(await eventually { first = try? await TCP.connect(address); return first != nil })
        guard let first else {
            serving.cancel()
            throw SillyError.connectionRefused(address)
        }
        return (address, serving, first)
    }

    /// A HEAD on `conn`, its answer's head: an answer means the connection was admitted.
    private static func head(_ conn: TCPConnection) async throws -> String {
        try await conn.write("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        return String(buffer: try await conn.read(until: "\r\n\r\n", timeout: patience))
    }

    @Test("a metrics endpoint serves maxConnections at once; the next is answered 503 and closed cleanly; a freed place is taken again")
    func metricsConnectionLimit() async throws {
        // A small limit, and an idle timeout no test-suite load reaches: the places must stay
        // taken while the test connects past them.
        let (address, serving, first) = try await Self.startEndpoint(maxConnections: 2, idleTimeout: .seconds(600))
        defer { serving.cancel() }
        var held = [first, try await TCP.connect(address)]
        for conn in held {
            #expect(try await Self.head(conn).hasPrefix("HTTP/1.1 200 OK\r\n"))
        }
        let turnedAway = try await TCP.connect(address)
        try await turnedAway.write("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        let answer = String(buffer: try await turnedAway.readToEnd())
        #expect(answer.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"), "\(answer)")
        #expect(answer.hasSuffix("\r\n\r\ntoo many metrics connections\n"), "\(answer)")
        await turnedAway.close()
        // The connections admitted are still served.
        for conn in held {
            #expect(try await Self.head(conn).hasPrefix("HTTP/1.1 200 OK\r\n"))
        }
        await held.removeLast().close()
        var status = ""
        #expect(await eventually { status = (try? await scrape(address).status) ?? ""; return status == "HTTP/1.1 200 OK" }, "\(status)")
        for conn in held { await conn.close() }
    }

    @Test("a metrics client that trickles a request's bytes is closed once idleTimeout passes without a whole request")
    func metricsRequestTrickled() async throws {
        let (_, serving, client) = try await Self.startEndpoint(idleTimeout: .seconds(1))
        defer { serving.cancel() }
        try await client.write("GET /metrics HTTP/1.1\r\nX-Slow: ")
        // A byte every 100 ms: before, each one put the idle timeout off, and the connection
        // held one of the endpoint's places for as long as the client liked.
        let ended = Mutex(false)
        let reader = Task {
            // Longer than the trickle goes on: only the endpoint's close ends this read in time.
            _ = try? await client.readToEnd(timeout: programPatience)
            ended.withLock { $0 = true }
        }
        let start = ContinuousClock.now
        while !ended.withLock({ $0 }) && ContinuousClock.now - start < patience {
            try? await client.write("a")
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(ended.withLock { $0 }, "served a trickling request for \(patience)")
        await reader.value
        await client.close()
    }

    @Test("a client turned away by a full metrics endpoint is closed within seconds, however it goes on sending")
    func metricsTurnedAwayClosed() async throws {
        let (address, serving, held) = try await Self.startEndpoint(maxConnections: 1, idleTimeout: .seconds(600))
        defer { serving.cancel() }
        #expect(try await Self.head(held).hasPrefix("HTTP/1.1 200 OK\r\n"))
        let turnedAway = try await TCP.connect(address)
        #expect(String(buffer: try await turnedAway.readToEnd()).hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))
        // It keeps sending after the 503 and the FIN: once the endpoint has closed its socket
        // (before: never, each byte putting the idle timeout off), the kernel answers with a
        // reset, and a write fails.
        var failure: SillyError?
        let start = ContinuousClock.now
        while failure == nil && ContinuousClock.now - start < patience {
            do throws(SillyError) {
                try await turnedAway.write("more")
            } catch {
                failure = error
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(failure != nil, "a turned-away client still held a socket after \(patience)")
        await turnedAway.close()
        await held.close()
    }

    @Test("a metrics client that pipelines requests and reads no answer cannot grow the server's memory")
    func metricsClientNeverReads() async throws {
        let server = try ServerProcess(["--metrics-addr", "127.0.0.1:0"])
        let metrics = try await metricsAddress(of: server)
        let before = server.residentKiB
        let flooder = RawSocket()  // never reads
        #expect(flooder.connect(port: Int(metrics.split(separator: ":").last!)!))
        let requests = Array(String(repeating: "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", count: 200).utf8)
        // Each 35-byte request asks for a few KiB. Before, the server went on reading and answering
        // them into its send queue as fast as it could (60 MiB more in 6 s, hundreds in 30 s);
        // now it stops reading once the answers wait, and the kernel's buffers fill.
        var unsentTail: ArraySlice<UInt8> = []
        let end = ContinuousClock.now + .seconds(6)
        while ContinuousClock.now < end {
            if unsentTail.isEmpty { unsentTail = requests[...] }
            let sent = flooder.sendAvailable(Array(unsentTail))
            if sent > 0 {
                unsentTail = unsentTail.dropFirst(sent)
            } else {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        #expect(server.residentKiB - before < 24 * 1024, "server grew by \(server.residentKiB - before) KiB")
        flooder.resetOnClose()
        _ = consume flooder
        #expect(try await scrape(metrics).status == "HTTP/1.1 200 OK")
        #expect(await server.stop() == 0)
    }

    @Test("--metrics-addr on a busy port fails at start with a clear error")
    func metricsAddressInUse() async throws {
        let holder = try await TCP.listen("127.0.0.1:0") { _ in }
        let server = try ServerProcess(["--metrics-addr", "127.0.0.1:\(holder.port)"])
        #expect(await server.exitStatus() == 1)
        #expect(server.errorLog.contains("silly-echo: --metrics-addr: cannot listen: address already in use: 127.0.0.1:\(holder.port)"), "\(server.errorLog)")
        await holder.close()
    }

    @Test("under a low open-file limit, idle metrics clients cannot take the echo server's descriptors: extra echo clients are still told it is full")
    func metricsWithinFileLimit() async throws {
        let server = try ServerProcess(["-c", "ulimit -n 128 && exec \(sillyEchoPath) --addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0"],
                                       addPort: false, executable: "/bin/sh")
        let address = try await server.address()
        let metrics = try await metricsAddress(of: server)
        // 128 / 16 = 8 metrics connections, as many turned away lingering, the endpoint's loops;
        // the server's own 64 (half the limit at most): what is left is for echo clients.
        let kept = 64 + 2 * 8 + 3 * System.coreCount
        #expect(server.log.contains("more than the open-file limit allows (128, \(kept) of them kept for the server and its metrics endpoint): using \(128 - kept)"),
                "\(server.log)")
        // Clients that connect to the metrics port and sit there.
        var sitting: [TCPConnection] = []
        for _ in 0..<64 { sitting.append(try await TCP.connect(metrics)) }
        let answers = try await servedOrToldFull(clients: 128 - kept + 8, at: address)
        #expect(answers.served == 128 - kept && answers.told == 8, "\(answers)")
        for client in sitting { await client.close() }
        #expect(await server.stop() == 0)
    }

    @Test("--metrics-addr equal to --addr is a usage error that says so")
    func metricsAddressSameAsEcho() async throws {
        try await expectUsageError(["--addr", "127.0.0.1:24999", "--metrics-addr", "127.0.0.1:24999"],
                                   "--metrics-addr 127.0.0.1:24999 is the echo server's own address (--addr)")
    }

    @Test("a malformed --metrics-addr fails at start, before the echo server listens")
    func metricsAddressMalformed() async throws {
        let server = try ServerProcess(["--metrics-addr", "bogus"])
        #expect(await server.exitStatus() == 1)
        #expect(server.errorLog.contains("silly-echo: --metrics-addr: invalid address 'bogus'"), "\(server.errorLog)")
        #expect(!server.log.contains("Listening on"), "\(server.log)")
    }
}

@Suite("silly-echo and silly-bench over TLS",
       .enabled(if: TestCertificate.available, "openssl is not installed (needed to make a test certificate)"))
struct TLSServiceTests {
    @Test("openssl s_client talks to silly-echo --tls-cert/--tls-key in command mode")
    func openSSLClient() async throws {
        let certificate = try await TestCertificate.make()
        let server = try ServerProcess(["--mode", "command", "--tls-cert", certificate.certificateFile, "--tls-key", certificate.privateKeyFile])
        let address = try await server.address()
        // -quiet keeps s_client reading until the server closes (after `quit`).
        let (output, status) = try await OutsideClient.run(
            "openssl",
            ["s_client", "-connect", address, "-quiet", "-verify_return_error", "-CAfile", certificate.certificateFile],
            input: "hello over TLS\nquit\n")
        #expect(status == 0, "\(output)")
        #expect(output.contains("Echo: hello over TLS"), "\(output)")
        #expect(output.contains("Goodbye"), "\(output)")
        #expect(await server.stop() == 0)
    }

    @Test("a plain-text client on the TLS port is closed, logged, and counted as a TLS error")
    func plainTextClient() async throws {
        let certificate = try await TestCertificate.make()
        let server = try ServerProcess(["--tls-cert", certificate.certificateFile, "--tls-key", certificate.privateKeyFile])
        let plain = try await TCP.connect(try await server.address())
        try await plain.write("hello\n")
        await #expect(throws: SillyError.self) {
            while true { _ = try await plain.readAvailable(timeout: patience) }
        }
        await plain.close()
        #expect(await server.waitForLog("Read error ["))
        // BoringSSL's reason, without SwiftNIO-SSL's nesting or the source path it carries.
        #expect(server.log.contains("-> TLS: handshake failed: WRONG_VERSION_NUMBER\n"), "\(server.log)")
        #expect(!server.log.contains(".build/"), "\(server.log)")
        #expect(await server.stop() == 0)
        #expect(server.log.contains("errors: tls 1"), "\(server.log)")
    }

    @Test("over TLS too, a client beyond --max-connections is told the server is full, then closed cleanly")
    func fullOverTLS() async throws {
        let certificate = try await TestCertificate.make()
        let server = try ServerProcess(["--max-connections", "1", "--tls-cert", certificate.certificateFile,
                                        "--tls-key", certificate.privateKeyFile])
        let address = try await server.address()
        let tls = try TLSOptions.client(trustedCertificateFile: certificate.certificateFile)
        let held = try await TCP.connect(address, tls: tls)
        try await held.write("hold\n")
        #expect(try await held.line() == "hold\n")
        // Turned away before its handshake is done: the line must wait for it, not be lost.
        // (Before, OpenSSL's client mostly saw its handshake cut by the server's FIN.)
        for _ in 0..<10 {
            let (output, status) = try await OutsideClient.run(
                "openssl", ["s_client", "-connect", address, "-quiet", "-verify_return_error", "-CAfile", certificate.certificateFile],
                input: "")
            #expect(status == 0 && output.contains("Server is full (1 connections)"), "\(output)")
        }
        let extra = try await TCP.connect(address, tls: tls)
        #expect(String(buffer: try await extra.readToEnd()).hasPrefix("Server is full (1 connections)"))
        await extra.close()
        await held.close()
        #expect(await server.stop() == 0)
        #expect(server.log.contains("accepted 1, rejected 11"), "\(server.log)")
    }

    @Test("a certificate path that does not exist stops silly-echo at start with a clear error")
    func badCertificatePath() async throws {
        let certificate = try await TestCertificate.make()
        let server = try ServerProcess(["--tls-cert", "/no/such/cert.pem", "--tls-key", certificate.privateKeyFile])
        #expect(await server.exitStatus() == 1)
        #expect(server.errorLog.contains("silly-echo: TLS: cannot read certificate file /no/such/cert.pem: No such file or directory"),
                "\(server.errorLog)")
    }

    @Test("silly-bench --tls: every echo checked against the CA file, or with --insecure; an untrusted certificate fails the run")
    func bench() async throws {
        let certificate = try await TestCertificate.make()
        let server = try ServerProcess(["--tls-cert", certificate.certificateFile, "--tls-key", certificate.privateKeyFile])
        let address = try await server.address()
        let common = ["--addr", address, "--clients", "10", "--messages", "50", "--tls"]
        let (status, figures) = try await BenchTests.run(common + ["--tls-ca", certificate.certificateFile])
        #expect(status == 0)
        #expect(figures["messages"] as? Int == 500)
        let (insecureStatus, insecure) = try await BenchTests.run(common + ["--insecure"])
        #expect(insecureStatus == 0)
        #expect(insecure["messages"] as? Int == 500)
        let (untrustedStatus, untrusted) = try await BenchTests.run(common)
        #expect(untrustedStatus == 1)
        #expect(untrusted["messages"] as? Int == 0)
        #expect((untrusted["errors"] as? [String: Any])?["tls"] as? Int == 10, "\(untrusted)")
        #expect(await server.stop() == 0)
    }
}
