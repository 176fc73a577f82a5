import NIOCore
import Silly
import SillyTestSupport
import Testing

@Suite("TLS: the library's listen and connect over swift-nio-ssl",
       .enabled(if: TestCertificate.available, "openssl is not installed (needed to make a test certificate)"))
struct TLSTests {
    let certificate: TestCertificate
    let serverTLS: TLSOptions

    init() async throws {
        self.certificate = try await TestCertificate.make()
        self.serverTLS = try TLSOptions.server(
            certificateFile: self.certificate.certificateFile, privateKeyFile: self.certificate.privateKeyFile)
    }

    @Test("lines echo over TLS; the certificate verifies by name and by IP address")
    func echo() async throws {
        let listener = try await TCP.listen("127.0.0.1:0", tls: self.serverTLS, accept: echoLines)
        let trusted = try TLSOptions.client(trustedCertificateFile: self.certificate.certificateFile)
        for host in ["localhost", "127.0.0.1"] {
            let client = try await TCP.connect("\(host):\(listener.port)", tls: trusted)
            for line in ["hello over TLS\n", String(repeating: "x", count: 40_000) + "\n"] {
                try await client.write(line)
                #expect(try await client.line() == line)
            }
            await client.close()
        }
        await listener.close()
    }

    @Test("an untrusted certificate fails the client's first read with a TLS error; verifyCertificate: false accepts it")
    func untrusted() async throws {
        let listener = try await TCP.listen("127.0.0.1:0", tls: self.serverTLS, accept: echoLines)
        let strict = try await TCP.connect("localhost:\(listener.port)", tls: try .client())
        try? await strict.write("hello\n")
        do throws(SillyError) {
            _ = try await strict.read(until: "\n", timeout: patience)
            Issue.record("read succeeded against an untrusted certificate")
        } catch {
            guard case .tls(let reason) = error else {
                Issue.record("expected a TLS error, got \(error)")
                return
            }
            #expect(reason.lowercased().contains("certificate"), "\(reason)")
        }
        await strict.close()

        let lenient = try await TCP.connect("127.0.0.1:\(listener.port)", tls: try .client(verifyCertificate: false))
        try await lenient.write("hello\n")
        #expect(try await lenient.line() == "hello\n")
        await lenient.close()
        await listener.close()
    }

    @Test("a plain-text client on a TLS port: its connection is closed, the handler's read fails with a TLS error")
    func plainTextClient() async throws {
        let errors = Mailbox<SillyError>()
        let listener = try await TCP.listen("127.0.0.1:0", tls: self.serverTLS) { connection in
            do throws(SillyError) {
                _ = try await connection.read(until: "\n", timeout: patience)
            } catch {
                errors.send(error)
            }
        }
        let plain = try await TCP.connect("127.0.0.1:\(listener.port)")
        try await plain.write("hello in plain text\n")
        await #expect(throws: SillyError.self) {
            while true { _ = try await plain.readAvailable(timeout: patience) }
        }
        let error = await errors.next()
        guard case .tls(let reason) = error else {
            Issue.record("expected a TLS error, got \(String(describing: error))")
            return
        }
        #expect(reason == "handshake failed: WRONG_VERSION_NUMBER")
        await plain.close()
        // One that connects and closes without a word.
        let silent = try await TCP.connect("127.0.0.1:\(listener.port)")
        await silent.close()
        #expect(await errors.next() == .tls("handshake failed: EOF during handshake"))
        await listener.close()
    }

    @Test("the peer's half-close arrives as the end of the stream; replies still go back")
    func halfClose() async throws {
        let listener = try await TCP.listen("127.0.0.1:0", tls: self.serverTLS) { connection in
            var count = 0
            while (try? await connection.read(until: "\n")) != nil { count += 1 }
            try await connection.write("\(count) lines\n")
        }
        let client = try await TCP.connect("127.0.0.1:\(listener.port)", tls: try .client(verifyCertificate: false))
        try await client.write("one\ntwo\nthree\n")
        await client.shutdownOutput()
        #expect(try await client.line() == "3 lines\n")
        await client.close()
        await listener.close()
    }

    @Test("a client's shutdownOutput() at once after connecting: the server reads its line, then the end, and replies")
    func clientShutdownOutputAtOnce() async throws {
        let listener = try await TCP.listen("127.0.0.1:0", tls: self.serverTLS) { conn in
            let line = try await conn.read(until: "\n")
            await #expect(throws: SillyError.endOfStream) { try await conn.read(count: 1) }
            try await conn.write(line)
        }
        let client = try await TCP.connect("127.0.0.1:\(listener.port)", tls: try .client(verifyCertificate: false))
        try await client.write("one line, then the end\n")
        await client.shutdownOutput()
        #expect(String(buffer: try await client.readToEnd()) == "one line, then the end\n")
        await client.close()
        await listener.close()
    }

    @Test("close() with a large reply queued: the peer's close_notify, arriving meanwhile, loses none of it")
    func closeWithReplyQueued() async throws {
        var options = ConnectionOptions()
        options.sendQueueLimit = 64 * 1024 * 1024
        options.closeLinger = bulkCloseLinger
        let reply = 16 * 1024 * 1024  // more than the kernel's buffers take: most of it stays queued
        let listener = try await TCP.listen("127.0.0.1:0", tls: self.serverTLS, options: options) { conn in
            _ = try await conn.read(until: "\n")
            try await conn.write(ByteBuffer(repeating: UInt8(ascii: "r"), count: reply))
            // The handler returns: the framework closes, the peer still open, the reply queued.
        }
        let client = try await TCP.connect("127.0.0.1:\(listener.port)", tls: try .client(verifyCertificate: false))
        try await client.write("go\n")
        var received = try await client.read(count: 1, timeout: patience).readableBytes
        // The reply is under way: now this side ends its stream (its close_notify) while the
        // server still has most of the reply to send.
        await client.shutdownOutput()
        received += try await client.readToEnd().readableBytes
        #expect(received == reply)
        await client.close()
        await listener.close()
    }

    @Test("abort() over TLS closes at once: no wait for the peer's close_notify nor for queued bytes a peer that reads nothing never takes", .timeLimit(.minutes(2)))
    func abortClosesAtOnce() async throws {
        var options = ConnectionOptions()
        options.sendQueueLimit = 64 * 1024 * 1024
        options.closeLinger = patience * 2  // a close() would wait for this peer far longer
        let results = Mailbox<String>()
        let listener = try await TCP.listen("127.0.0.1:0", tls: self.serverTLS, options: options) { conn in
            _ = try await conn.read(until: "\n")
            try await conn.write(ByteBuffer(repeating: UInt8(ascii: "a"), count: 16 * 1024 * 1024))
            await conn.abort()
            await conn.waitUntilClosed()
            results.send("closed")
        }
        var clientOptions = ConnectionOptions()
        clientOptions.receiveLimit = 1  // reads nothing more than its first byte
        let client = try await TCP.connect("127.0.0.1:\(listener.port)", tls: try .client(verifyCertificate: false), options: clientOptions)
        try await client.write("go\n")
        #expect(await results.next() == "closed")
        await client.close()
        await listener.close()
    }

    @Test("a handler that returns with the peer's bytes unread: its last reply still arrives, then a clean end")
    func closeWhilePeerSends() async throws {
        var options = ConnectionOptions()
        options.receiveLimit = 1024  // reading pauses: most of the client's bytes wait in the socket
        let listener = try await TCP.listen("127.0.0.1:0", tls: self.serverTLS, options: options) { conn in
            _ = try await conn.read(count: 1)
            try await conn.write("Goodbye!\n")
            // The handler returns without reading the rest: the framework closes with bytes unread.
        }
        let client = try await TCP.connect("127.0.0.1:\(listener.port)", tls: try .client(verifyCertificate: false))
        try await client.write(ByteBuffer(repeating: UInt8(ascii: "u"), count: 256 * 1024))
        await client.shutdownOutput()  // the server's close ends on it, not on its 1 s cap
        #expect(String(buffer: try await client.readToEnd()) == "Goodbye!\n")
        await client.close()
        await listener.close()
    }

    @Test("PROXY protocol and TLS on one listener: the header first, then the handshake")
    func proxyThenTLS() async throws {
        let peers = Mailbox<Endpoint?>()
        let listener = try await TCP.listen("127.0.0.1:0", proxyProtocol: ProxyProtocolOptions(), tls: self.serverTLS) { connection in
            peers.send(connection.remoteAddress)
            try await echoLines(connection)
        }
        // A relay in miniature: the header in plain text, then TLS bytes from a TLS client.
        let relay = try await TCP.listen("127.0.0.1:0") { inbound in
            let outbound = try await TCP.connect("127.0.0.1:\(listener.port)")
            try await outbound.write("PROXY TCP4 198.51.100.20 192.0.2.1 5555 443\r\n")
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { while true { try await outbound.write(try await inbound.readAvailable()) } }
                group.addTask { while true { try await inbound.write(try await outbound.readAvailable()) } }
                try await group.next()
                group.cancelAll()
            }
        }
        let client = try await TCP.connect("127.0.0.1:\(relay.port)", tls: try .client(trustedCertificateFile: self.certificate.certificateFile))
        try await client.write("through a relay, over TLS\n")
        #expect(try await client.line() == "through a relay, over TLS\n")
        #expect(await peers.next() == Endpoint(ip: "198.51.100.20", port: 5555))
        await client.close()
        await relay.close()
        await listener.close()
    }

    @Test("a handler's shutdownOutput() before the handshake is done: its reply, then the end, arrive after the handshake")
    func shutdownOutputBeforeHandshake() async throws {
        let shutDown = Mailbox<Bool>()
        let received = Mailbox<String>()
        let listener = try await TCP.listen("127.0.0.1:0", tls: self.serverTLS) { conn in
            try await conn.write("written before the handshake\n")
            await conn.shutdownOutput()
            shutDown.send(true)
            received.send(try await conn.readString(until: "\n", timeout: patience))  // reading goes on
        }
        // A relay that holds the client's bytes until the handler has shut its output down: the
        // handshake has certainly not begun when it does.
        let relay = try await TCP.listen("127.0.0.1:0") { inbound in
            let outbound = try await TCP.connect("127.0.0.1:\(listener.port)")
            guard await shutDown.next() == true else { return }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await relayUntilEnd(from: inbound, to: outbound) }
                group.addTask { try await relayUntilEnd(from: outbound, to: inbound) }
                try await group.waitForAll()
            }
        }
        let client = try await TCP.connect("127.0.0.1:\(relay.port)", tls: try .client(verifyCertificate: false))
        // The reply and the end come while the handler still waits for a line.
        #expect(String(buffer: try await client.readToEnd()) == "written before the handshake\n")
        try await client.write("and the client's line\n")
        #expect(await received.next() == "and the client's line\n")
        await client.close()
        await relay.close()
        await listener.close()
    }

    @Test("a handler that writes without ever waiting is stopped by the send queue limit over TLS too")
    func sendQueueLimit() async throws {
        var options = ConnectionOptions()
        options.sendQueueLimit = 1024 * 1024
        let results = Mailbox<String>()
        let listener = try await TCP.listen("127.0.0.1:0", tls: self.serverTLS, options: options) { conn in
            _ = try await conn.read(until: "\n")  // the handshake is done
            let chunk = ByteBuffer(repeating: UInt8(ascii: "t"), count: 16 * 1024)
            var written = 0
            do {
                // Never suspends: the writes pile up unflushed unless the engine flushes them.
                while written < 16 * 1024 * 1024 {
                    try await conn.write(chunk)
                    written += chunk.readableBytes
                }
                results.send("wrote \(written)")
            } catch {
                results.send("\(error)")
            }
        }
        let trusted = try TLSOptions.client(trustedCertificateFile: self.certificate.certificateFile)
        var clientOptions = ConnectionOptions()
        clientOptions.receiveLimit = 16 * 1024  // reads nothing more: the server's queue backs up
        let client = try await TCP.connect("localhost:\(listener.port)", tls: trusted, options: clientOptions)
        try await client.write("go\n")
        #expect(await results.next() == "\(SillyError.sendQueueFull(limit: 1024 * 1024))")
        await client.close()
        await listener.close()
    }

    @Test("a private key that is not the certificate's is refused")
    func mismatchedKey() async throws {
        let other = try await TestCertificate.make()
        do throws(SillyError) {
            _ = try TLSOptions.server(certificateFile: self.certificate.certificateFile, privateKeyFile: other.privateKeyFile)
            Issue.record("a key of another certificate was taken")
        } catch {
            #expect("\(error)".hasPrefix(
                "TLS: cannot use the private key in \(other.privateKeyFile) with the certificate in \(self.certificate.certificateFile)"),
                "\(error)")
        }
    }

    @Test("files that cannot be read or parsed give TLS errors naming them")
    func badFiles() throws {
        #expect(throws: SillyError.tls("cannot read certificate file /no/such/cert.pem: No such file or directory")) {
            try TLSOptions.server(certificateFile: "/no/such/cert.pem", privateKeyFile: self.certificate.privateKeyFile)
        }
        do throws(SillyError) {
            _ = try TLSOptions.server(certificateFile: self.certificate.certificateFile, privateKeyFile: self.certificate.certificateFile)
            Issue.record("a certificate was taken for a private key")
        } catch {
            #expect("\(error)".hasPrefix("TLS: cannot load private key from \(self.certificate.certificateFile)"), "\(error)")
        }
        do throws(SillyError) {
            _ = try TLSOptions.server(certificateFile: self.certificate.privateKeyFile, privateKeyFile: self.certificate.privateKeyFile)
            Issue.record("a private key was taken for a certificate")
        } catch {
            #expect("\(error)".contains(self.certificate.privateKeyFile), "\(error)")
        }
    }
}

/// Copies what `source` sends to `destination` until `source` ends its stream, then ends
/// `destination`'s: one direction of a relay that passes half-closes on.
private func relayUntilEnd(from source: TCPConnection, to destination: TCPConnection) async throws {
    while true {
        do throws(SillyError) {
            try await destination.write(try await source.readAvailable(timeout: patience))
        } catch {
            guard error == .endOfStream else { throw error }
            await destination.shutdownOutput()
            return
        }
    }
}
