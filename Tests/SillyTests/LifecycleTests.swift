import Dispatch
import NIOCore
import NIOPosix
import Silly
import SillyTestSupport
import Synchronization
import Testing

@Suite("Connection lifecycle: end of stream, resets, closes, failing handlers")
struct LifecycleTests {
    @Test("after the peer closes, every line is still read, the last unterminated one too, then endOfStream")
    func endOfStreamWithPartialLine() async throws {
        let results = Mailbox<Result<String, SillyError>>()
        try await withServer(accept: { conn in
            while true {
                do {
                    results.send(.success(try await conn.readString(until: "\n")))
                } catch let error as SillyError {
                    results.send(.failure(error))
                    return
                }
            }
        }) { address in
            let client = try await TCP.connect(address)
            try await client.write("a\nb\nc")
            await client.close()
            #expect(await results.next() == .success("a\n"))
            #expect(await results.next() == .success("b\n"))
            #expect(await results.next() == .success("c"))
            #expect(await results.next() == .failure(.endOfStream))
        }
    }

    @Test("a clean end with no partial line: endOfStream straight after the last line")
    func endOfStreamClean() async throws {
        let results = Mailbox<Result<String, SillyError>>()
        try await withServer(accept: { conn in
            results.send(.success(try await conn.readString(until: "\n")))
            do {
                _ = try await conn.read(until: "\n")
            } catch let error as SillyError {
                results.send(.failure(error))
            }
        }) { address in
            let client = try await TCP.connect(address)
            try await client.write("only\n")
            await client.close()
            #expect(await results.next() == .success("only\n"))
            #expect(await results.next() == .failure(.endOfStream))
        }
    }

    @Test("half-close: the peer shuts its write side, the server still reads every line and answers")
    func halfClose() async throws {
        try await withServer(accept: echoLines) { address in
            let port = Int(address.split(separator: ":").last!)!
            let raw = try await rawClient(port: port)
            let closed = raw.eventLoop.makePromise(of: Void.self)
            let collector = Collector(closed: closed)
            try await raw.pipeline.addHandler(collector)
            try await raw.writeAndFlush(ByteBuffer(string: "one\ntwo\nthree")).get()
            try await raw.close(mode: .output).get()
            try await closed.futureResult.get()
            #expect(String(buffer: collector.received.withLock { $0 }) == "one\ntwo\nthree")
        }
    }

    @Test("a peer that resets the connection gives connectionReset, after the bytes it sent")
    func resetByPeer() async throws {
        let results = Mailbox<Result<String, SillyError>>()
        try await withServer(accept: { conn in
            results.send(.success(try await conn.readString(until: "\n")))
            do {
                _ = try await conn.read(until: "\n")
                results.send(.success("no error"))
            } catch let error as SillyError {
                results.send(.failure(error))
            }
        }) { address in
            let port = Int(address.split(separator: ":").last!)!
            let raw = try await rawClient(port: port, linger0: true)
            try await raw.writeAndFlush(ByteBuffer(string: "before reset\n")).get()
            #expect(await results.next() == .success("before reset\n"))
            try await raw.close().get()  // SO_LINGER 0: close sends RST
            #expect(await results.next() == .failure(.connectionReset))
        }
    }

    @Test("a handler that throws has its connection closed, and the server keeps serving")
    func throwingHandler() async throws {
        struct Boom: Error {}
        try await withServer(accept: { conn in
            let line = try await conn.read(until: "\n")
            if String(buffer: line) == "boom\n" { throw Boom() }
            try await conn.write(line)
            try await echoLines(conn)
        }) { address in
            let doomed = try await TCP.connect(address)
            try await doomed.write("boom\n")
            await #expect(throws: SillyError.endOfStream) { try await doomed.read(until: "\n", timeout: patience) }
            let healthy = try await TCP.connect(address)
            try await healthy.write("fine\n")
            #expect(try await healthy.line() == "fine\n")
            await doomed.close()
            await healthy.close()
        }
    }

    @Test("a handler that returns has its connection closed for it")
    func returningHandler() async throws {
        try await withServer(accept: { conn in
            try await conn.write("bye\n")
        }) { address in
            let client = try await TCP.connect(address)
            #expect(try await client.line() == "bye\n")
            await #expect(throws: SillyError.endOfStream) { try await client.read(until: "\n", timeout: patience) }
            await client.close()
        }
    }

    @Test("close() from another task wakes a blocked read with activeClosed; later calls fail the same way")
    func activeClose() async throws {
        let results = Mailbox<SillyError?>()
        try await withServer(accept: { conn in
            Task {
                try? await Task.sleep(for: .milliseconds(30))
                await conn.close()
            }
            do {
                _ = try await conn.read(until: "\n")
                results.send(nil)
            } catch let error as SillyError {
                results.send(error)
            }
            do {
                try await conn.write("late\n")
                results.send(nil)
            } catch let error as SillyError {
                results.send(error)
            }
            results.send(await conn.isAlive ? nil : .activeClosed)
        }) { address in
            let client = try await TCP.connect(address)
            #expect(await results.next() == .some(.activeClosed))
            #expect(await results.next() == .some(.activeClosed))
            #expect(await results.next() == .some(.activeClosed))
            await #expect(throws: SillyError.endOfStream) { try await client.read(until: "\n", timeout: patience) }
            await client.close()
        }
    }

    @Test("stopReading ends the input here: what is buffered is still read, then endOfStream; writing still works")
    func stopReading() async throws {
        let results = Mailbox<Result<String, SillyError>>()
        try await withServer(accept: { conn in
            results.send(.success(try await conn.readString(until: "\n")))
            await conn.stopReading()
            results.send(.success(try await conn.readString(until: "\n")))  // the buffered rest
            do {
                _ = try await conn.read(until: "\n")
            } catch let error as SillyError {
                results.send(.failure(error))
            }
            try await conn.write("still writable\n")
        }) { address in
            let client = try await TCP.connect(address)
            try await client.write("a\nb")  // one segment: "b" is buffered when input stops
            #expect(await results.next() == .success("a\n"))
            #expect(await results.next() == .success("b"))
            #expect(await results.next() == .failure(.endOfStream))
            #expect(try await client.line() == "still writable\n")
            await client.close()
        }
    }

    @Test("after stopReading, what the peer sends is not read: a read that waits fails with endOfStream")
    func stopReadingLaterBytes() async throws {
        let results = Mailbox<Result<String, SillyError>>()
        let stopped = Mailbox<Bool>()
        let sent = Mailbox<Bool>()
        try await withServer(accept: { conn in
            results.send(.success(try await conn.readString(until: "\n")))
            await conn.stopReading()
            stopped.send(true)
            // The peer's next line is on its way (and SwiftNIO has a read outstanding).
            _ = await sent.next()
            try? await Task.sleep(for: .milliseconds(200))
            do {
                results.send(.success(try await conn.readString(until: "\n", timeout: patience)))
            } catch let error as SillyError {
                results.send(.failure(error))
            }
        }) { address in
            let client = try await TCP.connect(address)
            try await client.write("a\n")
            #expect(await results.next() == .success("a\n"))
            #expect(await stopped.next() == true)
            try await client.write("b\n")
            sent.send(true)
            #expect(await results.next() == .failure(.endOfStream))
            await client.close()
        }
    }

    @Test("close() sends what was written before it")
    func closeFlushes() async throws {
        let payload = String(repeating: "0123456789abcdef", count: 64 * 1024)  // 1 MiB, more than a socket buffer
        try await withServer(accept: { conn in
            try await conn.write(payload)
            await conn.close()
        }) { address in
            let client = try await TCP.connect(address)
            let got = try await client.read(count: payload.utf8.count, timeout: patience)
            #expect(String(buffer: got) == payload)
            await client.close()
        }
    }

    @Test("a read in a cancelled task fails with cancelled; the connection stays usable")
    func cancellation() async throws {
        let results = Mailbox<SillyError?>()
        try await withServer(accept: { conn in
            let reader = Task { () -> SillyError? in
                withUnsafeCurrentTask { $0?.cancel() }
                do throws(SillyError) {
                    _ = try await conn.read(until: "\n")
                    return nil
                } catch {
                    return error
                }
            }
            results.send(await reader.value)
            try await echoLines(conn)
        }) { address in
            let client = try await TCP.connect(address)
            #expect(await results.next() == .some(.cancelled))
            try await client.write("after cancel\n")
            #expect(try await client.line() == "after cancel\n")
            await client.close()
        }
    }

    @Test("a cancelled task still gets what is buffered, on the connection's loop or off it; only a read that must wait fails",
          arguments: [true, false])
    func cancelledReadGetsBuffered(onLoop: Bool) async throws {
        let results = Mailbox<String>()
        try await withServer(accept: { conn in
            try await conn.write("ready\n")
            _ = try? await conn.read(count: 1, timeout: patience)
        }) { address in
            let client = try await TCP.connect(address)
            #expect(await eventually { await client.unreadBytes == 6 })
            let read = { @Sendable in
                withUnsafeCurrentTask { $0?.cancel() }
                for _ in 0..<2 {
                    do throws(SillyError) {
                        results.send(String(buffer: try await client.read(until: "\n")))
                    } catch {
                        results.send("\(error)")
                    }
                }
            }
            // This test's task is not on the connection's loop; a forked one is.
            if onLoop {
                await Tasks.fork(on: client.eventLoop) { await read() }.value
            } else {
                await Task { await read() }.value
            }
            #expect(await results.next() == "ready\n")
            #expect(await results.next() == "\(SillyError.cancelled)")
            await client.close()
        }
    }

    @Test("waitUntilWritable in a cancelled task fails with cancelled instead of waiting for a peer that does not read", .timeLimit(.minutes(1)))
    func cancelledWaitUntilWritable() async throws {
        var serverOptions = ConnectionOptions()
        serverOptions.receiveLimit = 1  // the server stops reading: the client's queue stays full
        let release = Mailbox<Bool>()
        try await withServer(options: serverOptions, accept: { _ in _ = await release.next() }) { address in
            var options = ConnectionOptions()
            options.sendQueueLimit = 256 * 1024 * 1024
            let client = try await TCP.connect(address, options: options)
            while await client.unsentBytes < 128 * 1024 {
                try await client.write(ByteBuffer(repeating: 0x61, count: 64 * 1024))
            }
            let waiter = Task { () -> SillyError? in
                withUnsafeCurrentTask { $0?.cancel() }
                do throws(SillyError) {
                    try await client.waitUntilWritable()
                    return nil
                } catch {
                    return error
                }
            }
            #expect(await waiter.value == .cancelled)
            #expect(await client.isAlive)
            release.send(true)
            await client.close()
        }
    }

    @Test("shutdownOutput ends a waitUntilWritable waiting in another task with activeClosed, without waiting for the peer to read", .timeLimit(.minutes(2)))
    func shutdownOutputEndsWritabilityWait() async throws {
        var options = ConnectionOptions()
        options.writeWatermarks = (16 * 1024)...(64 * 1024)
        let results = Mailbox<String>()
        let chunk = ByteBuffer(repeating: UInt8(ascii: "q"), count: 16 * 1024)
        try await withServer(options: options, accept: { conn in
            // Over the high water mark: the peer reads no more than its receive limit.
            while await conn.unsentBytes <= 64 * 1024 {
                try await conn.write(chunk)
                await Task.yield()  // the writes are flushed: the kernel's buffers fill first
            }
            // The waiter is forked on this loop, so it runs (and parks) before this task
            // resumes from its yield: the loop's executor runs its jobs in order.
            let waiter = Tasks.fork(on: conn.eventLoop) {
                do throws(SillyError) {
                    try await conn.waitUntilWritable(timeout: patience)
                    results.send("writable")
                } catch {
                    results.send("\(error)")
                }
            }
            await Task.yield()
            await conn.shutdownOutput()
            await waiter.value
            results.send(await conn.isAlive ? "alive" : "not alive")
            _ = try? await conn.read(until: "\n", timeout: patience)
        }) { address in
            var clientOptions = ConnectionOptions()
            clientOptions.receiveLimit = 16 * 1024
            let client = try await TCP.connect(address, options: clientOptions)
            #expect(await results.next() == "\(SillyError.activeClosed)")
            #expect(await results.next() == "not alive")
            await client.close()
        }
    }

    @Test("a read timeout or a timer hundreds of years negative is due at once, not never (SwiftNIO's conversion saturates to +max)", .timeLimit(.minutes(1)))
    func hugeNegativeDurations() async throws {
        try await withServer(accept: { conn in _ = try? await conn.read(count: 1, timeout: patience) }) { address in
            let client = try await TCP.connect(address)
            await #expect(throws: SillyError.timedOut) { try await client.read(count: 1, timeout: .seconds(-10_000_000_000)) }
            await client.close()
        }
        let fired = Mailbox<Bool>()
        Time.after(.seconds(-10_000_000_000)) { fired.send(true) }
        #expect(await fired.next() == true)
    }

    @Test("an IPv4 client of a dual-stack listener on [::] reads as 127.0.0.1, not ::ffff:127.0.0.1")
    func ipv4MappedAddress() async throws {
        let seen = Mailbox<String>()
        // (IPv6 is assumed, as by the address tests' `[::1]:0`.)
        let listener = try await TCP.listen("[::]:0") { conn in seen.send("\(conn.remoteAddress!)") }
        let client = try await TCP.connect("127.0.0.1:\(listener.port)")
        #expect(await seen.next() == client.localAddress?.description)
        #expect(client.localAddress?.ip == "127.0.0.1")
        await client.close()
        await listener.close()
    }

    @Test("closing the listener stops new connections; running handlers keep theirs")
    func listenerClose() async throws {
        let listener = try await TCP.listen("127.0.0.1:0", accept: echoLines)
        let address = "127.0.0.1:\(listener.port)"
        let client = try await TCP.connect(address)
        try await client.write("before\n")
        #expect(try await client.line() == "before\n")
        await listener.close()
        await #expect(throws: SillyError.connectionRefused(address)) { try await TCP.connect(address) }
        try await client.write("after\n")
        #expect(try await client.line() == "after\n")
        await client.close()
    }

    @Test("a connection accepted as the listener closes, before SwiftNIO registered it, is closed without its handler ever starting", .timeLimit(.minutes(2)))
    func listenerCloseBeforeRegistration() async throws {
        // The connection's loop is held while the acceptor accepts and the listener closes:
        // SwiftNIO then initializes the channel, finds its listener gone, and closes it.
        let loop = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let started = Mutex(0)
        let listener = try await TCP.listen("127.0.0.1:0", group: loop) { conn in
            started.withLock { $0 += 1 }
            try await echoLines(conn)
        }
        let release = DispatchSemaphore(value: 0)
        loop.next().execute { release.wait() }
        let client = RawSocket()
        #expect(client.connect(port: listener.port))
        // Accepted: the listening socket's queue is empty again.
        #expect(await eventually {
            SocketEntry.all().contains { $0.state == .listen && $0.localPort == listener.port && $0.receiveQueue == 0 }
        })
        await listener.close()
        release.signal()
        #expect(client.receive(count: 1).isEmpty)  // closed, not served
        // Anything the loop had queued for the connection (its handler's task) has run by now.
        try await loop.next().submit {}.get()
        try await loop.next().submit {}.get()
        #expect(started.withLock { $0 } == 0)
    }

    @Test("abort() closes at once, dropping what a peer that reads nothing has not taken; waitUntilClosed() then returns", .timeLimit(.minutes(2)))
    func abortClosesAtOnce() async throws {
        var options = ConnectionOptions()
        options.sendQueueLimit = .max
        options.closeLinger = patience * 2  // a close() would wait for this peer far longer
        let results = Mailbox<String>()
        try await withServer(options: options, accept: { conn in
            try await conn.write(ByteBuffer(repeating: UInt8(ascii: "a"), count: 16 * 1024 * 1024))
            await conn.abort()
            #expect(await !conn.isAlive)
            await conn.waitUntilClosed()
            results.send("closed")
        }) { address in
            var clientOptions = ConnectionOptions()
            clientOptions.receiveLimit = 1  // reads nothing until told
            let client = try await TCP.connect(address, options: clientOptions)
            #expect(await results.next() == "closed")
            await client.setReceiveLimit(nil)
            var received = 0
            do throws(SillyError) {
                while true { received += try await client.readAvailable(timeout: patience).readableBytes }
            } catch {
                #expect(error == .endOfStream || error == .connectionReset, "\(error)")
            }
            #expect(received < 16 * 1024 * 1024)
            await client.close()
        }
    }

    @Test("remoteAddress and localAddress print as IP:port and mirror each other")
    func addresses() async throws {
        let seen = Mailbox<String>()
        try await withServer(accept: { conn in
            seen.send("\(conn.remoteAddress!)")
        }) { address in
            let client = try await TCP.connect(address)
            #expect(client.remoteAddress?.description == address)
            #expect(await seen.next() == client.localAddress?.description)
            #expect(client.localAddress?.ip == "127.0.0.1")
            await client.close()
        }
    }
}

/// Gathers what a raw client receives, and completes `closed` when the server closes.
final class Collector: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let received = Mutex(ByteBuffer())
    let closed: EventLoopPromise<Void>

    init(closed: EventLoopPromise<Void>) {
        self.closed = closed
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = self.unwrapInboundIn(data)
        self.received.withLock { _ = $0.writeBuffer(&chunk) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.closed.succeed(())
    }
}
