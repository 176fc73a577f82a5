import NIOCore
import Silly
import SillyTestSupport
import Testing

@Suite("Reading: every read form over real sockets")
struct ReadTests {
    @Test("read(until:) echoes whole lines, delimiter included")
    func echoLine() async throws {
        try await withServer(accept: echoLines) { address in
            let client = try await TCP.connect(address)
            try await client.write("Hello Silly!\n")
            #expect(try await client.line() == "Hello Silly!\n")
            try await client.write("This is a test\nand another\n")
            #expect(try await client.line() == "This is a test\n")
            #expect(try await client.line() == "and another\n")
            await client.close()
        }
    }

    @Test("a delimiter split across segments is found; one-byte writes; \\r\\n split between its bytes")
    func splitDelimiters() async throws {
        let lines = Mailbox<String>()
        try await withServer(accept: { conn in
            lines.send(try await conn.readString(until: .crlf))
            lines.send(try await conn.readString(until: "\n"))
            lines.send(try await conn.readString(until: "END"))
        }) { address in
            let client = try await TCP.connect(address)
            // Each piece goes in its own flush: a suspension ends the batch.
            for piece in ["hel", "lo\r", "\n", "o", "n", "e", "\n", "abcE", "N", "D"] {
                try await client.write(piece)
                try await Task.sleep(for: .milliseconds(2))
            }
            #expect(await lines.next() == "hello\r\n")
            #expect(await lines.next() == "one\n")
            #expect(await lines.next() == "abcEND")
            await client.close()
        }
    }

    @Test("a slow sender, one byte per segment, gets its long line back intact")
    func oneByteWrites() async throws {
        try await withServer(accept: echoLines) { address in
            let client = try await TCP.connect(address)
            let line = Array("the quick brown fox jumps over the lazy dog\n".utf8)
            for byte in line {
                try await client.write([byte])
                try await Task.sleep(for: .milliseconds(1))
            }
            #expect(try await client.line() == String(decoding: line, as: UTF8.self))
            await client.close()
        }
    }

    @Test("read(count:) returns exactly n bytes; read(count: unreadBytes) returns what is buffered, even nothing")
    func countReads() async throws {
        let results = Mailbox<[UInt8]>()
        try await withServer(accept: { conn in
            results.send(Array(buffer: try await conn.read(count: 5)))
            results.send(Array(buffer: try await conn.read(count: await conn.unreadBytes)))
            results.send(Array(buffer: try await conn.read(count: 3)))
            // The whole rest arrived in one write; wait for all of it, then take it in one read.
            while await conn.unreadBytes < 4 { _ = try await Task.sleep(for: .milliseconds(1)) }
            results.send(Array(buffer: try await conn.read(count: await conn.unreadBytes)))
        }) { address in
            let client = try await TCP.connect(address)
            try await client.write("12345")
            #expect(await results.next() == Array("12345".utf8))
            #expect(await results.next() == [])
            try await client.write("678")
            #expect(await results.next() == Array("678".utf8))
            try await client.write("9abc")
            #expect(await results.next() == Array("9abc".utf8))
            await client.close()
        }
    }

    @Test("readAvailable waits for at least one byte and returns what is there, up to maxLength")
    func readAvailable() async throws {
        let results = Mailbox<String>()
        try await withServer(accept: { conn in
            results.send(String(buffer: try await conn.readAvailable()))
            results.send(String(buffer: try await conn.readAvailable(maxLength: 2)))
        }) { address in
            let client = try await TCP.connect(address)
            try await client.write("abcd")
            let first = await results.next()
            #expect(first.map { "abcd".hasPrefix($0) && !$0.isEmpty } == true)
            try await client.write("efgh")
            let second = await results.next()
            #expect(second.map { $0.count <= 2 && !$0.isEmpty } == true)
            await client.close()
        }
    }

    @Test("binary data with NUL bytes passes through byte delimiters and counts unchanged")
    func binaryData() async throws {
        var payload = [UInt8](repeating: 0, count: 4096)
        var generator = SystemRandomNumberGenerator()
        for index in payload.indices { payload[index] = UInt8.random(in: 0...255, using: &generator) }
        payload.removeAll { $0 == 0xFF }
        let frame = payload + [0xFF]
        try await withServer(accept: { conn in
            let record = try await conn.read(until: Delimiter([0xFF])!)
            try await conn.write(record)
            let raw = try await conn.read(count: 1000)
            try await conn.write(raw)
        }) { address in
            let client = try await TCP.connect(address)
            try await client.write(frame)
            #expect(Array(buffer: try await client.read(count: frame.count, timeout: patience)) == frame)
            let zeros = [UInt8](repeating: 0, count: 1000)
            try await client.write(zeros)
            #expect(Array(buffer: try await client.read(count: 1000, timeout: patience)) == zeros)
            await client.close()
        }
    }

    @Test(
        "one timer serves reads with different timeouts: a short one after a long one fires, a long one after a short one waits its whole time",
        .timeLimit(.minutes(2))  // a short timeout waiting out the long one's timer would take 10
    )
    func readTimeoutsOfDifferentLengths() async throws {
        let results = Mailbox<Result<String, SillyError>>()
        @Sendable func read(_ conn: TCPConnection, timeout: Duration) async -> Result<String, SillyError> {
            let result: Result<String, SillyError>
            do throws(SillyError) {
                result = .success(String(buffer: try await conn.read(until: "\n", timeout: timeout)))
            } catch {
                result = .failure(error)
            }
            results.send(result)
            return result
        }
        // The third read must be met before its timer fires. On a machine stalled past that
        // timeout it reports timedOut and is tried again with twice the time, so a slow machine
        // makes this test longer, never wrong.
        let firstMetTimeout = Duration.seconds(3)
        let lastMetTimeout = Duration.seconds(12)
        try await withServer(accept: { conn in
            _ = await read(conn, timeout: .seconds(600))  // arms the timer 10 minutes ahead
            _ = await read(conn, timeout: .milliseconds(50))  // must not wait for those 10 minutes
            var timeout = firstMetTimeout
            while await read(conn, timeout: timeout) == .failure(.timedOut), timeout < lastMetTimeout {
                timeout *= 2
            }
            _ = await read(conn, timeout: .seconds(600))  // the met read's timer must not end this one
        }) { address in
            let client = try await TCP.connect(address)
            try await client.write("first\n")
            #expect(await results.next() == .success("first\n"))
            #expect(await results.next() == .failure(.timedOut))
            try await client.write("second\n")
            var timeout = firstMetTimeout
            var result = await results.next()
            while result == .failure(.timedOut), timeout < lastMetTimeout {
                timeout *= 2
                result = await results.next()
            }
            #expect(result == .success("second\n"))
            // Past the met read's timer, which then finds a read due 10 minutes later.
            try await Task.sleep(for: timeout + .milliseconds(300))
            try await client.write("third\n")
            #expect(await results.next() == .success("third\n"))
            await client.close()
        }
    }

    @Test("a read with a timeout fails with timedOut; the bytes stay and a later read gets them")
    func readTimeout() async throws {
        let results = Mailbox<Result<String, SillyError>>()
        try await withServer(accept: { conn in
            do {
                _ = try await conn.read(until: "\n", timeout: .milliseconds(50))
                results.send(.success("no timeout"))
            } catch let error as SillyError {
                results.send(.failure(error))
            }
            results.send(.success(try await conn.readString(until: "\n")))
        }) { address in
            let client = try await TCP.connect(address)
            try await client.write("partial")
            #expect(await results.next() == .failure(.timedOut))
            try await client.write(" line\n")
            #expect(await results.next() == .success("partial line\n"))
            await client.close()
        }
    }

    @Test("a line longer than maxLineLength fails with lineTooLong; the connection survives for other reads")
    func lineTooLong() async throws {
        var options = ConnectionOptions()
        options.maxLineLength = 1024
        let results = Mailbox<Result<Int, SillyError>>()
        try await withServer(options: options, accept: { conn in
            do {
                _ = try await conn.read(until: "\n")
                results.send(.success(-1))
            } catch let error as SillyError {
                results.send(.failure(error))
            }
            results.send(.success(await conn.unreadBytes))
        }) { address in
            let client = try await TCP.connect(address)
            try await client.write(String(repeating: "x", count: 5000))
            #expect(await results.next() == .failure(.lineTooLong(limit: 1024)))
            let unread = await results.next()
            #expect(unread.flatMap { try? $0.get() }.map { $0 >= 1024 } == true)
            await client.close()
        }
    }

    @Test("a per-read maxLength overrides the connection's; one shorter than the delimiter fails at once")
    func perReadMaxLength() async throws {
        let results = Mailbox<SillyError?>()
        try await withServer(accept: { conn in
            for (delimiter, maxLength) in [(Delimiter("\r\n\r\n"), 3), ("\n", 8)] {
                do {
                    _ = try await conn.read(until: delimiter, maxLength: maxLength)
                    results.send(nil)
                } catch let error as SillyError {
                    results.send(error)
                }
            }
        }) { address in
            let client = try await TCP.connect(address)
            // Before any byte comes: no line can hold a 4-byte delimiter in 3 bytes.
            #expect(await results.next() == .some(.lineTooLong(limit: 3)))
            try await client.write("0123456789\n")
            #expect(await results.next() == .some(.lineTooLong(limit: 8)))
            await client.close()
        }
    }

    @Test("a second concurrent read on one connection fails with readInProgress")
    func oneReaderAtATime() async throws {
        let results = Mailbox<SillyError?>()
        try await withServer(accept: { conn in
            // The handler runs on the connection's loop: park a first read through the
            // callback-level API (synchronously, no timing involved), then try a second one.
            let firstLine = LineProbe()
            #expect(conn.tryRead(until: "\n", notifying: firstLine) == nil)
            do {
                _ = try await conn.read(until: "\n")
                results.send(nil)
            } catch let error as SillyError {
                results.send(error)
            }
            if case .success(let line) = await firstLine.results.next() {
                try await conn.write(line)
            }
        }) { address in
            let client = try await TCP.connect(address)
            #expect(await results.next() == .some(.readInProgress))
            try await client.write("still fine\n")
            #expect(try await client.line() == "still fine\n")
            await client.close()
        }
    }
}

/// A `TCPReadHandler` that hands its result to the test.
final class LineProbe: TCPReadHandler, Sendable {
    let results = Mailbox<Result<ByteBuffer, SillyError>>()

    func readCompleted(_ result: Result<ByteBuffer, SillyError>) {
        self.results.send(result)
    }
}
