import Foundation
import NIOCore
import NIOPosix
import Silly
import SillyTestSupport
import Testing

/// What a PROXY protocol listener reported: a connection it accepted, or one it refused.
enum ProxyOutcome: Sendable, Equatable {
    case accepted(remote: Endpoint?, header: ProxyHeader?)
    case rejected(ProxyHeaderError)
}

/// A PROXY protocol listener on one event loop (so outcomes arrive in connection order) that
/// reports every outcome and echoes lines; `body` gets its port and the outcomes.
func withProxyServer<T>(
    headerTimeout: Duration = patience * 3,
    _ body: (Int, Mailbox<ProxyOutcome>) async throws -> T
) async throws -> T {
    let outcomes = Mailbox<ProxyOutcome>()
    var proxy = ProxyProtocolOptions { error, _ in outcomes.send(.rejected(error)) }
    proxy.headerTimeout = headerTimeout
    let listener = try await TCP.listen("127.0.0.1:0", proxyProtocol: proxy, group: proxyTestLoop) { connection in
        outcomes.send(.accepted(remote: connection.remoteAddress, header: connection.proxyHeader))
        try await echoLines(connection)
    }
    defer { listener.closeNow() }
    return try await body(listener.port, outcomes)
}

private let proxyTestLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1)

/// The v2 header HAProxy's `send-proxy-v2` writes, with optional TLVs after the addresses.
func proxyV2Header(command: UInt8 = 0x21, family: UInt8, addresses: [UInt8], tlvs: [UInt8] = []) -> [UInt8] {
    let length = addresses.count + tlvs.count
    return [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, command, family,
            UInt8(length >> 8), UInt8(length & 0xFF)] + addresses + tlvs
}

/// IPv4 addresses and ports in v2 order: source, destination, source port, destination port.
func v2IPv4(_ source: [UInt8], _ destination: [UInt8], _ sourcePort: UInt16, _ destinationPort: UInt16) -> [UInt8] {
    source + destination + [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF), UInt8(destinationPort >> 8), UInt8(destinationPort & 0xFF)]
}

@Suite("PROXY protocol: v1 and v2 headers over real sockets")
struct ProxyProtocolTests {
    /// Sends `bytes` then a line, and returns what the server reported and the echoed line.
    private func exchange(_ bytes: [UInt8], port: Int, outcomes: Mailbox<ProxyOutcome>, oneByteAtATime: Bool = false)
        async throws -> (ProxyOutcome?, String, TCPConnection)
    {
        let client = try await TCP.connect("127.0.0.1:\(port)")
        if oneByteAtATime {
            for byte in bytes {
                try await client.write([byte])
                try await Task.sleep(for: .milliseconds(1))
            }
            try await client.write("payload\n")
        } else {
            // Header and payload in one write: one segment.
            try await client.write(bytes + Array("payload\n".utf8))
        }
        let outcome = await outcomes.next()
        let echoed = try await client.line()
        return (outcome, echoed, client)
    }

    /// Sends `bytes` then a line; expects the connection accepted with `expected` (its source as
    /// the remote address, or the socket's own peer when it has none) and the line echoed.
    private func expectAccepted(
        _ bytes: [UInt8], as expected: ProxyHeader, port: Int, outcomes: Mailbox<ProxyOutcome>,
        oneByteAtATime: Bool = false, _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let (outcome, echoed, client) = try await self.exchange(bytes, port: port, outcomes: outcomes, oneByteAtATime: oneByteAtATime)
        #expect(outcome == .accepted(remote: expected.source ?? client.localAddress, header: expected), comment, sourceLocation: sourceLocation)
        #expect(echoed == "payload\n", comment, sourceLocation: sourceLocation)
        await client.close()
    }

    /// A valid v1 header from 192.0.2.1:1 is still served: the listener outlived what came before.
    private func expectStillServing(port: Int, outcomes: Mailbox<ProxyOutcome>, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await self.expectAccepted(
            Array("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n".utf8),
            as: ProxyHeader(version: .v1, command: .proxy, source: Endpoint(ip: "192.0.2.1", port: 1), destination: Endpoint(ip: "192.0.2.2", port: 2)),
            port: port, outcomes: outcomes, sourceLocation: sourceLocation)
    }

    @Test("v1 TCP4 and TCP6: the original client is the remote address; the payload in the same segment echoes")
    func v1() async throws {
        try await withProxyServer { port, outcomes in
            try await self.expectAccepted(
                Array("PROXY TCP4 192.0.2.7 198.51.100.1 56324 9999\r\n".utf8),
                as: ProxyHeader(version: .v1, command: .proxy, source: Endpoint(ip: "192.0.2.7", port: 56324),
                                destination: Endpoint(ip: "198.51.100.1", port: 9999)),
                port: port, outcomes: outcomes)
            try await self.expectAccepted(
                Array("PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n".utf8),
                as: ProxyHeader(version: .v1, command: .proxy, source: Endpoint(ip: "2001:db8::1", port: 1),
                                destination: Endpoint(ip: "2001:db8::2", port: 65535)),
                port: port, outcomes: outcomes)
            #expect("\(Endpoint(ip: "2001:db8::1", port: 1))" == "[2001:db8::1]:1")
        }
    }

    @Test("40 headers with payloads arriving at once on one loop: every client accepted as itself, every payload echoed")
    func burstOfHeaders() async throws {
        // More accept handlers start in one batch of socket events than the executor lets wait,
        // so some run inside the decoder's `channelRead`, before it passes the payload on: their
        // first read waits for it.
        try await withProxyServer { port, outcomes in
            let sockets = (0..<40).map { _ in RawSocket() }
            for socket in sockets { #expect(socket.connect(port: port)) }
            let messages = sockets.indices.map { index in
                Array("PROXY TCP4 192.0.2.9 198.51.100.1 \(1000 + index) 9999\r\npayload \(index)\n".utf8)
            }
            for (socket, message) in zip(sockets, messages) {
                #expect(socket.sendAvailable(message) == message.count)
            }
            for (index, socket) in sockets.enumerated() {
                let payload = Array("payload \(index)\n".utf8)
                #expect(await offThePool { socket.receive(count: payload.count) } == payload)
            }
            var sources = Set<Int>()
            for _ in sockets.indices {
                if case .accepted(let remote, _) = await outcomes.next(), let remote {
                    #expect(remote.ip == "192.0.2.9")
                    sources.insert(remote.port)
                }
            }
            #expect(sources == Set(1000..<1040))
        }
    }

    @Test("v2 TCP4 with TLVs skipped, and TCP6: the payload in the same segment echoes")
    func v2() async throws {
        try await withProxyServer { port, outcomes in
            // ALPN "h2" and a UNIQUE_ID TLV, as HAProxy may add.
            let tlvs: [UInt8] = [0x01, 0x00, 0x02, 0x68, 0x32, 0x05, 0x00, 0x03, 0x61, 0x62, 0x63]
            try await self.expectAccepted(
                proxyV2Header(family: 0x11, addresses: v2IPv4([10, 1, 2, 3], [10, 9, 9, 9], 40000, 9999), tlvs: tlvs),
                as: ProxyHeader(version: .v2, command: .proxy, source: Endpoint(ip: "10.1.2.3", port: 40000),
                                destination: Endpoint(ip: "10.9.9.9", port: 9999)),
                port: port, outcomes: outcomes)
            let source: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [0x05]
            let destination: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [0x06]
            try await self.expectAccepted(
                proxyV2Header(family: 0x21, addresses: source + destination + [0x01, 0xBB, 0x27, 0x0F]),
                as: ProxyHeader(version: .v2, command: .proxy, source: Endpoint(ip: "2001:db8::5", port: 443),
                                destination: Endpoint(ip: "2001:db8::6", port: 9999)),
                port: port, outcomes: outcomes)
        }
    }

    @Test("LOCAL (a health check) and v1 UNKNOWN keep the socket's real peer")
    func localAndUnknown() async throws {
        try await withProxyServer { port, outcomes in
            try await self.expectAccepted(
                proxyV2Header(command: 0x20, family: 0x00, addresses: []),
                as: ProxyHeader(version: .v2, command: .local, source: nil, destination: nil), port: port, outcomes: outcomes)
            try await self.expectAccepted(
                Array("PROXY UNKNOWN whatever follows\r\n".utf8),
                as: ProxyHeader(version: .v1, command: .proxy, source: nil, destination: nil), port: port, outcomes: outcomes)
        }
    }

    static let acceptedEdges: [(String, [UInt8], ProxyHeader)] = {
        let v4 = v2IPv4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)
        let tlvFill = 4096 - 16 - 12 - 3
        return [
            ("a bare PROXY UNKNOWN", Array("PROXY UNKNOWN\r\n".utf8),
             ProxyHeader(version: .v1, command: .proxy, source: nil, destination: nil)),
            ("a v1 line of exactly 107 bytes", Array(("PROXY UNKNOWN " + String(repeating: "x", count: 91) + "\r\n").utf8),
             ProxyHeader(version: .v1, command: .proxy, source: nil, destination: nil)),
            ("the longest TCP6 line", Array("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe 65535 65534\r\n".utf8),
             ProxyHeader(version: .v1, command: .proxy, source: Endpoint(ip: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", port: 65535),
                         destination: Endpoint(ip: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", port: 65534))),
            ("v2 UDP over IPv4", proxyV2Header(family: 0x12, addresses: v4),
             ProxyHeader(version: .v2, command: .proxy, source: nil, destination: nil)),
            ("v2 a Unix stream socket", proxyV2Header(family: 0x31, addresses: Array(repeating: 0x41, count: 216)),
             ProxyHeader(version: .v2, command: .proxy, source: nil, destination: nil)),
            ("v2 UNSPEC", proxyV2Header(family: 0x00, addresses: []),
             ProxyHeader(version: .v2, command: .proxy, source: nil, destination: nil)),
            ("LOCAL with an IPv4 block", proxyV2Header(command: 0x20, family: 0x11, addresses: v4),
             ProxyHeader(version: .v2, command: .local, source: nil, destination: nil)),
            ("LOCAL with a family and no block (to be ignored)", proxyV2Header(command: 0x20, family: 0x11, addresses: []),
             ProxyHeader(version: .v2, command: .local, source: nil, destination: nil)),
            ("v2 of exactly 4096 bytes", proxyV2Header(family: 0x11, addresses: v4, tlvs: [0xEE, UInt8(tlvFill >> 8), UInt8(tlvFill & 0xFF)] + Array(repeating: 7, count: tlvFill)),
             ProxyHeader(version: .v2, command: .proxy, source: Endpoint(ip: "1.2.3.4", port: 1), destination: Endpoint(ip: "5.6.7.8", port: 2))),
        ]
    }()

    @Test("edge forms the specification allows are accepted; without a TCP source the real peer stays",
          arguments: ProxyProtocolTests.acceptedEdges.indices)
    func acceptedEdge(index: Int) async throws {
        let (name, bytes, expected) = Self.acceptedEdges[index]
        try await withProxyServer { port, outcomes in
            try await self.expectAccepted(bytes, as: expected, port: port, outcomes: outcomes, "\(name)")
        }
    }

    @Test("a header split across one-byte writes, v1 and v2")
    func oneByteWrites() async throws {
        try await withProxyServer { port, outcomes in
            try await self.expectAccepted(
                Array("PROXY TCP4 203.0.113.9 198.51.100.1 1234 80\r\n".utf8),
                as: ProxyHeader(version: .v1, command: .proxy, source: Endpoint(ip: "203.0.113.9", port: 1234),
                                destination: Endpoint(ip: "198.51.100.1", port: 80)),
                port: port, outcomes: outcomes, oneByteAtATime: true)
            try await self.expectAccepted(
                proxyV2Header(family: 0x11, addresses: v2IPv4([203, 0, 113, 10], [198, 51, 100, 1], 4321, 80)),
                as: ProxyHeader(version: .v2, command: .proxy, source: Endpoint(ip: "203.0.113.10", port: 4321),
                                destination: Endpoint(ip: "198.51.100.1", port: 80)),
                port: port, outcomes: outcomes, oneByteAtATime: true)
        }
    }

    static let malformedHeaders: [(String, [UInt8], ProxyHeaderError)] = {
        let v4 = v2IPv4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)
        func v1(_ line: String) -> [UInt8] { Array(line.utf8) }
        return [
            ("plain HTTP", v1("GET / HTTP/1.0\r\n\r\n"), .missing),
            ("a bare LF", v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), .malformed("the v1 line must end with CRLF")),
            ("an unknown protocol", v1("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), .malformed("unknown protocol 'TCP5' (TCP4, TCP6 or UNKNOWN)")),
            ("a leading zero", v1("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"), .malformed("bad port '01'")),
            ("a port past 65535", v1("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n"), .malformed("bad port '65536'")),
            ("IPv6 under TCP4", v1("PROXY TCP4 ::1 ::1 1 2\r\n"), .malformed("bad IPv4 address '::1'")),
            ("a field missing", v1("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"),
             .malformed("expected 'PROXY TCP4 SOURCE DESTINATION SPORT DPORT'")),
            ("a double space", v1("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"),
             .malformed("expected 'PROXY TCP4 SOURCE DESTINATION SPORT DPORT'")),
            ("a control byte", v1("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n"),
             .malformed("the v1 line holds a byte that is not printable ASCII")),
            ("a v1 line past 107 bytes", v1("PROXY UNKNOWN " + String(repeating: "x", count: 100)), .oversized(limit: 107)),
            ("v2 version 1", Array(proxyV2Header(family: 0x11, addresses: v4).enumerated().map { $0 == 12 ? 0x11 : $1 }),
             .malformed("version 1 in the v2 header (only 2 exists)")),
            ("v2 command 2", proxyV2Header(command: 0x22, family: 0x11, addresses: v4), .malformed("unknown v2 command 2")),
            ("v2 family 4", proxyV2Header(family: 0x41, addresses: v4), .malformed("unknown v2 address family and protocol 0x41")),
            ("v2 IPv4 without a transport", proxyV2Header(family: 0x10, addresses: v4), .malformed("unknown v2 address family and protocol 0x10")),
            ("v2 a transport without a family", proxyV2Header(family: 0x01, addresses: v4), .malformed("unknown v2 address family and protocol 0x1")),
            ("IPv4 under TCP6", v1("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"), .malformed("bad IPv6 address '1.2.3.4'")),
            ("a host name for an address", v1("PROXY TCP4 localhost 5.6.7.8 1 2\r\n"), .malformed("bad IPv4 address 'localhost'")),
            ("a 108-byte v1 line", v1("PROXY UNKNOWN " + String(repeating: "x", count: 92) + "\r\n"), .oversized(limit: 107)),
            ("v2 addresses cut short", proxyV2Header(family: 0x11, addresses: Array(v4.prefix(8))),
             .malformed("address block of 8 bytes, 12 needed")),
            ("v2 TLV past the end", proxyV2Header(family: 0x11, addresses: v4, tlvs: [0x01, 0x00, 0x09, 0x41]),
             .malformed("a TLV runs past the end of the v2 header")),
            ("v2 past 4 KiB", proxyV2Header(family: 0x11, addresses: v4, tlvs: [0x04, 0x13, 0x88] + Array(repeating: 0, count: 5000)),
             .oversized(limit: 4096)),
        ]
    }()

    @Test("every malformed form closes its connection with a typed error; the accept handler never runs",
          arguments: ProxyProtocolTests.malformedHeaders.indices)
    func malformed(index: Int) async throws {
        let (name, bytes, expected) = Self.malformedHeaders[index]
        try await withProxyServer { port, outcomes in
            let client = try await TCP.connect("127.0.0.1:\(port)")
            try await client.write(bytes + Array("payload\n".utf8))
            #expect(await outcomes.next() == .rejected(expected), "\(name)")
            await #expect(throws: SillyError.self, "\(name): the server closes") {
                try await client.read(until: "\n", timeout: patience)
            }
            await client.close()
            // The listener keeps serving.
            try await self.expectStillServing(port: port, outcomes: outcomes)
        }
    }

    @Test("a header cut off by the peer's EOF, or never finished, is refused; a connection that sends nothing is not reported")
    func truncatedAndLate() async throws {
        try await withProxyServer { port, outcomes in
            let cut = try await TCP.connect("127.0.0.1:\(port)")
            try await cut.write("PROXY TCP4 1.2.3.4")
            await cut.shutdownOutput()
            #expect(await outcomes.next() == .rejected(.truncated))
            await cut.close()

            // Nothing at all, then close: a plain TCP health check, which reports nothing, so the
            // next outcome is the next connection's acceptance.
            let silent = try await TCP.connect("127.0.0.1:\(port)")
            await silent.close()
            try await self.expectStillServing(port: port, outcomes: outcomes)
        }
        try await withProxyServer(headerTimeout: .milliseconds(300)) { port, outcomes in
            let late = try await TCP.connect("127.0.0.1:\(port)")
            try await late.write(Array(proxyV2Header(family: 0x11, addresses: v2IPv4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)).prefix(20)))
            #expect(await outcomes.next() == .rejected(.timedOut))
            await #expect(throws: SillyError.self) { try await late.read(until: "\n", timeout: patience) }
            await late.close()
        }
    }

    /// `SILLY_PROPERTY_CASES` scales both property tests (default 200 each).
    static let propertyCases = ProcessInfo.processInfo.environment["SILLY_PROPERTY_CASES"].flatMap(Int.init).map { $0 / 5 } ?? 200

    @Test("property: random valid headers (v1 and v2, IPv4 and IPv6) with random payloads and random chunking give the source and every byte")
    func randomValidHeaders() async throws {
        var random = SeededGenerator(seed: 0x5052_4F58)
        try await withProxyServer { port, outcomes in
            for round in 0..<Self.propertyCases {
                let sixes = Bool.random(using: &random)
                let sourceBytes = (0..<(sixes ? 16 : 4)).map { _ in UInt8.random(in: 0...255, using: &random) }
                let destinationBytes = (0..<(sixes ? 16 : 4)).map { _ in UInt8.random(in: 0...255, using: &random) }
                let sourcePort = UInt16.random(in: 0...65535, using: &random)
                let destinationPort = UInt16.random(in: 0...65535, using: &random)
                // The expected endpoints, in the text form the server gives (inet_ntop's).
                let source = try #require(Endpoint(try SocketAddress(packedIPAddress: ByteBuffer(bytes: sourceBytes), port: Int(sourcePort))))
                let destination = try #require(Endpoint(try SocketAddress(packedIPAddress: ByteBuffer(bytes: destinationBytes), port: Int(destinationPort))))
                let header: [UInt8]
                if Bool.random(using: &random) {
                    header = Array("PROXY \(sixes ? "TCP6" : "TCP4") \(source.ip) \(destination.ip) \(source.port) \(destination.port)\r\n".utf8)
                } else {
                    let tlvLength = Int.random(in: 0...40, using: &random)
                    let tlvs = tlvLength == 0 ? [] : [UInt8(0xE0), 0, UInt8(tlvLength)] + (0..<tlvLength).map { _ in UInt8.random(in: 0...255, using: &random) }
                    let ports = [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF), UInt8(destinationPort >> 8), UInt8(destinationPort & 0xFF)]
                    header = proxyV2Header(family: sixes ? 0x21 : 0x11, addresses: sourceBytes + destinationBytes + ports, tlvs: tlvs)
                }
                // A random binary payload (no newline inside) ending with one.
                let payload = (0..<Int.random(in: 0...200, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }.map { $0 == 10 ? 11 : $0 } + [10]
                var stream = header + payload
                let client = try await TCP.connect("127.0.0.1:\(port)")
                while !stream.isEmpty {
                    let chunk = Int.random(in: 1...max(1, stream.count), using: &random)
                    try await client.write(Array(stream.prefix(chunk)))
                    stream.removeFirst(min(chunk, stream.count))
                    if Int.random(in: 0..<4, using: &random) == 0 { try await Task.sleep(for: .milliseconds(1)) }
                }
                let outcome = await outcomes.next()
                guard case .accepted(let remote, let parsed) = outcome else {
                    Issue.record("round \(round): \(String(describing: outcome))")
                    return
                }
                #expect(remote == source, "round \(round)")
                #expect(parsed?.destination == destination, "round \(round)")
                let echoed = try await client.read(until: "\n", timeout: patience)
                #expect(Array(echoed.readableBytesView) == payload, "round \(round)")
                await client.close()
            }
        }
    }

    @Test("property: random bytes, often starting like a header, never crash the listener; each is accepted or refused")
    func randomBytes() async throws {
        var random = SeededGenerator(seed: 0xBAD_B17E5)
        let prefixes: [[UInt8]] = [[], Array("PROXY ".utf8), Array("PROXY TCP4 ".utf8), Array(proxyV2Header(family: 0x11, addresses: []).prefix(12))]
        try await withProxyServer(headerTimeout: .milliseconds(200)) { port, outcomes in
            for round in 0..<Self.propertyCases {
                var bytes = prefixes.randomElement(using: &random)!
                bytes += (0..<Int.random(in: 1...300, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                let client = try await TCP.connect("127.0.0.1:\(port)")
                try await client.write(bytes)
                if Bool.random(using: &random) { await client.shutdownOutput() }
                // Every connection gets exactly one outcome: accepted, or refused for a reason.
                #expect(await outcomes.next() != nil, "round \(round)")
                await client.close()
            }
            // The listener keeps serving. Its 200 ms header timeout can beat a client stalled on
            // a loaded machine: that connection is refused for it, and another one tries.
            for _ in 0..<10 {
                let client = try await TCP.connect("127.0.0.1:\(port)")
                try await client.write("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\npayload\n")
                let outcome = await outcomes.next()
                if outcome == .rejected(.timedOut) {
                    await client.close()
                    continue
                }
                #expect(outcome == .accepted(remote: Endpoint(ip: "192.0.2.1", port: 1), header: ProxyHeader(
                    version: .v1, command: .proxy, source: Endpoint(ip: "192.0.2.1", port: 1), destination: Endpoint(ip: "192.0.2.2", port: 2))))
                #expect(try await client.line() == "payload\n")
                await client.close()
                return
            }
            Issue.record("every header timed out: the listener no longer reads its connections")
        }
    }
}
