import NIOCore
import Silly
import SillyTestSupport
import Testing

/// An echo written against the callback-level API: reads complete at once while lines are
/// buffered, and through `readCompleted` once they must be waited for.
private final class LoopEcho: TCPReadHandler, @unchecked Sendable {
    let connection: TCPConnection
    var echoed: [String] = []
    /// How each line came: "at once" (`tryRead` returned it) or "later" (`readCompleted`).
    var paths: [String] = []
    var done: CheckedContinuation<(lines: [String], end: SillyError), Never>?

    init(_ connection: TCPConnection) {
        self.connection = connection
    }

    func start(_ done: CheckedContinuation<(lines: [String], end: SillyError), Never>) {
        self.done = done
        self.pump()
    }

    func pump() {
        while let result = self.connection.tryRead(until: "\n", notifying: self) {
            self.paths.append("at once")
            guard self.handle(result) else { return }
        }
    }

    func readCompleted(_ result: Result<ByteBuffer, SillyError>) {
        self.paths.append("later")
        if self.handle(result) { self.pump() }
    }

    private func handle(_ result: Result<ByteBuffer, SillyError>) -> Bool {
        switch result {
        case .success(let line):
            self.echoed.append("\(self.paths.last!): \(String(buffer: line))")
            do {
                try self.connection.writeOnLoop(line)
                return true
            } catch {
                self.done?.resume(returning: (self.echoed, error))
                return false
            }
        case .failure(let error):
            self.done?.resume(returning: (self.echoed, error))
            self.done = nil
            return false
        }
    }
}

@Suite("The callback-level API beneath the async one")
struct LoopAPITests {
    @Test("tryRead/writeOnLoop echo lines, buffered ones at once and the rest through the handler")
    func callbackEcho() async throws {
        let outcome = Mailbox<(lines: [String], end: SillyError)>()
        try await withServer(accept: { conn in
            let echo = LoopEcho(conn)
            let result = await withCheckedContinuation { continuation in
                conn.eventLoop.execute { echo.start(continuation) }
            }
            outcome.send(result)
        }) { address in
            let client = try await TCP.connect(address)
            try await client.write("one\ntwo\n")  // buffered together: the second read completes at once
            #expect(try await client.line() == "one\n")
            #expect(try await client.line() == "two\n")
            try await Task.sleep(for: .milliseconds(20))
            try await client.write("three\n")  // arrives while a read waits: readCompleted
            #expect(try await client.line() == "three\n")
            await client.close()
            let result = await outcome.next()
            // "one" came whichever way the handler met it; "two" was buffered with it.
            #expect(result?.lines.dropFirst() == ["at once: two\n", "later: three\n"])
            #expect(result?.lines.first?.hasSuffix(": one\n") == true)
            #expect(result?.end == .endOfStream)
        }
    }

    @Test("isWritableOnLoop is false past the high water mark, while waitUntilWritable would wait, true once the peer reads, false once closed")
    func writabilityOnLoop() async throws {
        var options = ConnectionOptions()
        options.writeWatermarks = (16 * 1024)...(64 * 1024)
        let results = Mailbox<String>()
        let chunk = ByteBuffer(repeating: UInt8(ascii: "w"), count: 8 * 1024)
        try await withServer(options: options, accept: { conn in
            let before = conn.eventLoop.inEventLoop && conn.isWritableOnLoop
            var written = 0
            // The peer reads nothing yet: once the kernel's buffers are full (loopback's can take
            // several MiB), the queue passes the high water mark.
            while conn.isWritableOnLoop && written < 256 * 1024 * 1024 {
                try conn.writeOnLoop(chunk)
                written += chunk.readableBytes
                await Task.yield()  // the loop flushes: only what the kernel will not take stays queued
            }
            let over = conn.unsentBytesOnLoop > 16 * 1024 ? "over" : "under"
            results.send("writable at first: \(before); then not: \(!conn.isWritableOnLoop), \(over) the low water mark unsent")
            // It would wait: with a timeout, it fails.
            do throws(SillyError) {
                try await conn.waitUntilWritable(timeout: .milliseconds(100))
                results.send("did not wait")
            } catch {
                results.send("\(error)")
            }
            try await conn.waitUntilWritable()
            results.send("writable again: \(conn.isWritableOnLoop), \(conn.unsentBytesOnLoop < 16 * 1024 ? "under" : "over") the low water mark")
            try conn.writeOnLoop(ByteBuffer(string: "end\n"))
            results.send("\(written)")
            _ = try? await conn.read(until: "\n")
            await conn.close()
            results.send("closed: writable \(conn.isWritableOnLoop)")
        }) { address in
            var clientOptions = ConnectionOptions()
            clientOptions.receiveLimit = 16 * 1024
            let client = try await TCP.connect(address, options: clientOptions)
            let filled = await results.next()
            #expect(filled == "writable at first: true; then not: true, over the low water mark unsent")
            let waited = await results.next()
            #expect(waited == "\(SillyError.timedOut)")
            let received = try await client.read(until: "end\n", maxLength: 64 * 1024 * 1024, timeout: patience)
            #expect(await results.next() == "writable again: true, under the low water mark")
            #expect(await results.next() == "\(received.readableBytes - 4)")
            try await client.write("bye\n")
            #expect(await results.next() == "closed: writable false")
            await client.close()
        }
    }

    @Test("a deferred read with a timeout reports timedOut through the handler")
    func callbackTimeout() async throws {
        final class Probe: TCPReadHandler, @unchecked Sendable {
            let box = Mailbox<Result<ByteBuffer, SillyError>>()
            func readCompleted(_ result: Result<ByteBuffer, SillyError>) { self.box.send(result) }
        }
        let probe = Probe()
        let finished = Mailbox<Void>()
        try await withServer(accept: { conn in
            conn.eventLoop.execute {
                #expect(conn.tryRead(count: 10, timeout: .milliseconds(50), notifying: probe) == nil)
            }
            _ = await finished.next()  // keep the connection open until the test has its answer
        }) { address in
            let client = try await TCP.connect(address)
            let result = await probe.box.next()
            #expect(result.map { if case .failure(.timedOut) = $0 { true } else { false } } == true)
            finished.send(())
            await client.close()
        }
    }
}
