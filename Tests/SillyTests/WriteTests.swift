#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import Silly
import SillyTestSupport
import Testing

@Suite("Writing, backpressure and flow control")
struct WriteTests {
    @Test("a batch of buffers is sent in order with one flush")
    func batchWrite() async throws {
        try await withServer(accept: { conn in
            let parts = ["alpha\n", "beta\n", "gamma\n"].map { ByteBuffer(string: $0) }
            try await conn.write(contentsOf: parts)
            _ = try? await conn.read(until: "\n")
        }) { address in
            let client = try await TCP.connect(address)
            #expect(try await client.line() == "alpha\n")
            #expect(try await client.line() == "beta\n")
            #expect(try await client.line() == "gamma\n")
            await client.close()
        }
    }

    @Test("writing to a peer that does not read ends in sendQueueFull; waitUntilWritable resumes once it reads")
    func sendQueueFullAndDrain() async throws {
        var options = ConnectionOptions()
        options.sendQueueLimit = 256 * 1024
        options.writeWatermarks = (16 * 1024)...(64 * 1024)
        let results = Mailbox<String>()
        let chunk = ByteBuffer(repeating: UInt8(ascii: "z"), count: 16 * 1024)
        try await withServer(options: options, accept: { conn in
            var written = 0
            do {
                while true {
                    try await conn.write(chunk)
                    written += chunk.readableBytes
                    await Task.yield()
                }
            } catch {
                results.send("\(error)")
            }
            let unsent = await conn.unsentBytes
            results.send(unsent > 0 && unsent <= 256 * 1024 ? "bounded" : "unsent \(unsent)")
            try await conn.waitUntilWritable()
            results.send("writable")
            try await conn.write("end\n")
            _ = try? await conn.read(until: "\n")
            _ = written
        }) { address in
            // The client holds at most 64 KiB unread: then the kernel's buffers fill and the
            // server's queue grows, however fast this machine runs the two sides.
            var clientOptions = ConnectionOptions()
            clientOptions.receiveLimit = 64 * 1024
            let client = try await TCP.connect(address, options: clientOptions)
            #expect(await results.next() == "\(SillyError.sendQueueFull(limit: 256 * 1024))")
            #expect(await results.next() == "bounded")
            // Now read everything: the server's queue drains and its waitUntilWritable returns.
            let end = try await client.read(until: "end\n", maxLength: 64 * 1024 * 1024, timeout: patience)
            #expect(end.readableBytes > 256 * 1024)
            #expect(await results.next() == "writable")
            await client.close()
        }
    }

    @Test("one write larger than the send queue limit fails with sendQueueFull, even with the queue empty")
    func oversizedWrite() async throws {
        var options = ConnectionOptions()
        options.sendQueueLimit = 256 * 1024
        let results = Mailbox<String>()
        try await withServer(options: options, accept: { conn in
            do {
                try await conn.write(ByteBuffer(repeating: UInt8(ascii: "x"), count: 512 * 1024))
                results.send("accepted")
            } catch {
                results.send("\(error)")
            }
            try await conn.write("small\n")
            _ = try? await conn.read(until: "\n")
        }) { address in
            let client = try await TCP.connect(address)
            #expect(await results.next() == "send queue full: the write would leave more than 262144 bytes unsent")
            #expect(try await client.line() == "small\n")
            await client.close()
        }
    }

    @Test("waitUntilWritable with a timeout fails with timedOut while the peer reads nothing; the connection stays usable")
    func writabilityTimeout() async throws {
        var options = ConnectionOptions()
        options.writeWatermarks = (16 * 1024)...(64 * 1024)
        let results = Mailbox<String>()
        let chunk = ByteBuffer(repeating: UInt8(ascii: "w"), count: 16 * 1024)
        try await withServer(options: options, accept: { conn in
            // Write until the queue is over its high water mark (the peer reads nothing yet).
            var written = 0
            while true {
                try await conn.write(chunk)
                written += chunk.readableBytes
                do throws(SillyError) {
                    try await conn.waitUntilWritable(timeout: .milliseconds(300))
                } catch {
                    results.send("\(error)")
                    break
                }
            }
            results.send(await conn.isAlive ? "alive" : "closed")
            try await conn.waitUntilWritable()  // no timeout: waits for the peer to read
            try await conn.write("end\n")
            results.send("\(written)")
            _ = try? await conn.read(until: "\n")
        }) { address in
            var clientOptions = ConnectionOptions()
            clientOptions.receiveLimit = 16 * 1024
            let client = try await TCP.connect(address, options: clientOptions)
            #expect(await results.next() == "\(SillyError.timedOut)")
            #expect(await results.next() == "alive")
            let received = try await client.read(until: "end\n", maxLength: 64 * 1024 * 1024, timeout: patience)
            #expect(await results.next() == "\(received.readableBytes - 4)")
            await client.close()
        }
    }

    @Test("a low water mark of 0 means 'until everything is sent': waitUntilWritable waits for it, and nothing traps")
    func lowWaterMarkZero() async throws {
        var options = ConnectionOptions()
        options.writeWatermarks = 0...(64 * 1024)
        let reply = 1024 * 1024
        let results = Mailbox<String>()
        try await withServer(options: options, accept: { conn in
            _ = try await conn.read(until: "\n")
            try await conn.write(ByteBuffer(repeating: UInt8(ascii: "z"), count: reply))
            try await conn.waitUntilWritable()
            results.send("unsent \(await conn.unsentBytes)")
        }) { address in
            let client = try await TCP.connect(address)
            try await client.write("go\n")
            #expect(try await client.read(count: reply, timeout: patience).readableBytes == reply)
            #expect(await results.next() == "unsent 0")
            await client.close()
        }
    }

    @Test("a write after the peer reset the connection fails as a reset, also once the channel is gone; the peer's address stays")
    func writeAfterReset() async throws {
        let results = Mailbox<String>()
        let accepted = Mailbox<Bool>()
        try await withServer(accept: { conn in
            _ = try await conn.read(until: "\n")
            accepted.send(true)
            do throws(SillyError) {
                _ = try await conn.read(until: "\n")
                results.send("read a line")
            } catch {
                results.send("read: \(error)")
            }
            // SwiftNIO removes a closed channel's handlers on a later turn of its loop.
            try? await Task.sleep(for: .milliseconds(100))
            do throws(SillyError) {
                try await conn.write("too late\n")
                results.send("written")
            } catch {
                results.send("write: \(error)")
            }
            // SwiftNIO has forgotten the closed socket's addresses; the connection has not.
            results.send("peer: \(conn.remoteAddress?.ip ?? "none")")
        }) { address in
            let port = Int(address.split(separator: ":").last!)!
            do {
                let raw = RawSocket()
                try #require(raw.connect(port: port))
                #expect(raw.sendAvailable(Array("hello\n".utf8)) == 6)
                // Reset once accepted: a connection reset before its accept has no peer address.
                _ = await accepted.next()
                raw.resetOnClose()
            }  // closed here: a reset
            #expect(await results.next() == "read: \(SillyError.connectionReset)")
            #expect(await results.next() == "write: \(SillyError.connectionReset)")
            #expect(await results.next() == "peer: 127.0.0.1")
        }
    }

    @Test("a reset found by a write (the kernel refuses it) fails the next write as a reset, not as the stream's clean end")
    func resetFoundByWrite() async throws {
        let results = Mailbox<String>()
        // The client's socket, reset from the server's own loop: so the reset is there before
        // the flush below, and SwiftNIO's next look at the socket comes after it.
        nonisolated(unsafe) var client: RawSocket? = RawSocket()
        // On a loop of its own: the handler blocks its loop for 100 ms.
        try await withServer(group: quietLoop, accept: { conn in
            _ = try await conn.read(until: "\n")
            client?.resetOnClose()
            client = nil  // closed: a reset, delivered at once on loopback
            usleep(100_000)
            do throws(SillyError) {
                try await conn.write("too late\n")
                await Task.yield()  // the group of tasks ends, its writes are flushed: refused
                try await conn.write("again\n")
                results.send("written")
            } catch {
                results.send("\(error)")
            }
        }) { address in
            let port = Int(address.split(separator: ":").last!)!
            try #require(client?.connect(port: port) == true)
            #expect(client?.sendAvailable(Array("hello\n".utf8)) == 6)
            let result = await results.next()
            #expect(result == "\(SillyError.connectionReset)")
        }
    }

    @Test("unflushed writes on a plain connection count once against the send queue limit")
    func unflushedCountOnce() async throws {
        var options = ConnectionOptions()
        options.sendQueueLimit = 100 * 1024  // under twice the high water mark: every write is checked
        let results = Mailbox<String>()
        try await withServer(options: options, accept: { conn in
            do throws(SillyError) {
                try await conn.write(ByteBuffer(repeating: UInt8(ascii: "a"), count: 40 * 1024))
                try await conn.write(ByteBuffer(repeating: UInt8(ascii: "b"), count: 21 * 1024))  // 61 KiB queued
                try await conn.write("\n")
                results.send("queued")
            } catch {
                results.send("\(error)")
            }
            _ = try? await conn.read(until: "\n")
        }) { address in
            let client = try await TCP.connect(address)
            #expect(await results.next() == "queued")
            #expect(try await client.read(until: "\n", maxLength: 1 << 20, timeout: patience).readableBytes == 61 * 1024 + 1)
            await client.close()
        }
    }

    @Test("after shutdownOutput, a write fails with activeClosed and the connection is no longer alive")
    func writeAfterShutdownOutput() async throws {
        let results = Mailbox<String>()
        try await withServer(accept: { conn in
            try await conn.write("bye\n")
            await conn.shutdownOutput()
            results.send(await conn.isAlive ? "alive" : "not alive")
            do throws(SillyError) {
                try await conn.write("lost?\n")
                results.send("written")
            } catch {
                results.send("\(error)")
            }
            _ = try? await conn.read(until: "\n")
        }) { address in
            let client = try await TCP.connect(address)
            #expect(await results.next() == "not alive")
            #expect(await results.next() == "\(SillyError.activeClosed)")
            #expect(String(buffer: try await client.readToEnd()) == "bye\n")
            await client.close()
        }
    }

    @Test("bytes the peer sends after close() are not kept while written bytes drain")
    func nothingKeptAfterClose() async throws {
        var options = ConnectionOptions()
        options.closeLinger = .seconds(30)
        let results = Mailbox<String>()
        let sent = Mailbox<Bool>()
        try await withServer(options: options, accept: { conn in
            _ = try await conn.read(count: 1)
            // 4 MiB the client does not read yet: close() lingers while they drain.
            try await conn.write(ByteBuffer(repeating: UInt8(ascii: "d"), count: 4 * 1024 * 1024 - 1024))
            await conn.close()
            results.send("closed")
            _ = await sent.next()
            results.send("\(await conn.unreadBytes)")
        }) { address in
            var clientOptions = ConnectionOptions()
            clientOptions.receiveLimit = 16 * 1024
            let client = try await TCP.connect(address, options: clientOptions)
            try await client.write("x")
            #expect(await results.next() == "closed")
            try await client.write(ByteBuffer(repeating: UInt8(ascii: "u"), count: 256 * 1024))
            // Every byte has left the client, and the server's socket holds none of them: the
            // server has read them all (the close lingers, its reply unread, for 30 s).
            let serverPort = try #require(client.remoteAddress?.port)
            let clientPort = try #require(client.localAddress?.port)
            #expect(await eventually {
                guard await client.unsentBytes == 0 else { return false }
                let server = SocketEntry.all().first { $0.localPort == serverPort && $0.remotePort == clientPort }
                return server?.receiveQueue == 0
            })
            sent.send(true)
            #expect(await results.next() == "0")
            // The server closes once its bytes drained: a reset if some of ours were still
            // unread in its socket then. Either way the stream ends.
            _ = try? await client.readToEnd()
            await client.close()
        }
    }

    @Test("a peer that reads slowly, taking longer than closeLinger in all, still gets every byte written before the close")
    func slowReaderGetsEverything() async throws {
        var options = ConnectionOptions()
        options.closeLinger = .seconds(3)
        options.sendQueueLimit = 16 * 1024 * 1024
        // More than the kernel's send buffer takes (on loopback it grows to 4 MiB).
        let reply = 12 * 1024 * 1024
        let unsentAtClose = Mailbox<Int>()
        try await withServer(options: options, accept: { conn in
            _ = try await conn.read(count: 1)
            try await conn.write(ByteBuffer(repeating: UInt8(ascii: "s"), count: reply))
            unsentAtClose.send(await conn.unsentBytes)
            // Returns: the framework closes, with most of the reply still queued.
        }) { address in
            let port = try #require(Int(address.split(separator: ":").last!))
            // 1 MiB, then half a second's pause, on a thread of its own (the concurrency pool
            // may be busy with other tests): the reply takes 6 s or more, twice closeLinger, but
            // each 3 s the client takes megabytes, far more than the 64 KiB the close asks for.
            // Only a stall of the client alone, of 2.5 s or more, could make it look stalled.
            let received = await offThePool {
                let client = RawSocket()
                client.setReceiveBuffer(256 * 1024)  // the reply waits in the server, not here
                guard client.connect(port: port), client.sendAvailable([UInt8(ascii: "x")]) == 1 else { return -1 }
                var received = 0
                while true {
                    let chunk = client.receive(count: 1024 * 1024)
                    received += chunk.count
                    guard chunk.count == 1024 * 1024 else { return received }
                    usleep(500_000)
                }
            }
            // What the test is about: the close had bytes left to send when it began.
            #expect(await unsentAtClose.next() ?? 0 > 0)
            #expect(received == reply)
        }
    }

    @Test("a peer that stops taking the bytes queued at close() is cut off once closeLinger passes: the descriptor goes")
    func stalledReaderCutOff() async throws {
        var options = ConnectionOptions()
        options.closeLinger = .milliseconds(200)
        options.sendQueueLimit = 16 * 1024 * 1024
        let reply = 12 * 1024 * 1024
        let closed = Mailbox<String>()
        try await withServer(options: options, accept: { conn in
            _ = try await conn.read(count: 1)
            try await conn.write(ByteBuffer(repeating: UInt8(ascii: "s"), count: reply))
            await conn.close()
            try await conn.closeFuture.get()
            closed.send("closed")
        }) { address in
            let port = try #require(Int(address.split(separator: ":").last!))
            let client = RawSocket()
            client.setReceiveBuffer(8 * 1024)
            #expect(client.connect(port: port))
            #expect(client.sendAvailable([UInt8(ascii: "x")]) == 1)
            #expect(await closed.next() == "closed")
            // What was still queued in the server when it gave up never comes. (Read on a thread
            // of its own: blocking calls hold up the concurrency pool's threads.)
            let received = await offThePool {
                var received = 0
                while true {
                    let chunk = client.receive(count: 256 * 1024)
                    received += chunk.count
                    guard chunk.count == 256 * 1024 else { return received }
                }
            }
            #expect(received < reply)
        }
    }

    @Test("close() while the receive limit paused reading: the socket is read again, so the close is clean")
    func closeWhilePaused() async throws {
        var options = ConnectionOptions()
        options.receiveLimit = 1  // any byte left unread pauses reading
        options.sendQueueLimit = 64 * 1024 * 1024
        options.closeLinger = bulkCloseLinger
        // More than the kernel's buffers take (loopback's grow to several MiB), so that close()
        // finds bytes unsent and lingers: what this test is about. (With nothing left to send,
        // close() closes at once, and unread bytes make the kernel reset the connection.)
        let reply = 16 * 1024 * 1024
        let results = Mailbox<String>()
        try await withServer(options: options, accept: { conn in
            _ = try await conn.read(count: 1)
            // The client's 32 KiB wait unread in the socket: once a first piece of them is
            // buffered, the receive limit stops reading it.
            while await conn.unreadBytes == 0 {
                try await Task.sleep(for: .milliseconds(10))
            }
            try await Task.sleep(for: .milliseconds(50))
            try await conn.write(ByteBuffer(repeating: UInt8(ascii: "r"), count: reply))
            results.send(await conn.unsentBytes > 0 ? "lingering" : "all sent")
            await conn.close()  // lingers while the reply drains
            results.send("closed")
        }) { address in
            var clientOptions = ConnectionOptions()
            clientOptions.receiveLimit = 16 * 1024
            let client = try await TCP.connect(address, options: clientOptions)
            try await client.write("x")
            // Small enough for the server's socket to take at once (a larger amount could still
            // be on its way when the server's final close comes).
            try await client.write(ByteBuffer(repeating: UInt8(ascii: "u"), count: 32 * 1024))
            #expect(await results.next() == "lingering")
            #expect(await results.next() == "closed")
            // Closed with those bytes still unread in its socket, the server would send a reset
            // instead of the end of the stream.
            let received = try await client.readToEnd()
            #expect(received.readableBytes == reply)
            await client.close()
        }
    }

    @Test("a close while the peer still sends ends the stream with a FIN, not a reset: the last reply arrives")
    func closeWhilePeerSends() async throws {
        var options = ConnectionOptions()
        options.receiveLimit = 1024  // reading pauses: most of the client's bytes wait in the socket
        try await withServer(options: options, accept: { conn in
            while await conn.unreadBytes == 0 {
                try await Task.sleep(for: .milliseconds(10))
            }
            try await Task.sleep(for: .milliseconds(50))
            try await conn.write("Goodbye!\n")
            // The handler returns without reading: the framework closes with bytes unread.
        }) { address in
            let client = try await TCP.connect(address)
            try await client.write(ByteBuffer(repeating: UInt8(ascii: "u"), count: 256 * 1024))
            // Its end after its bytes, so the server's close ends on it, not on its 1 s cap
            // (which a loaded machine could reach before this side read the reply).
            await client.shutdownOutput()
            // A reset would fail this read (and can destroy the reply before it is read).
            #expect(String(buffer: try await client.readToEnd()) == "Goodbye!\n")
            await client.close()
        }
    }

    @Test("after close(), a peer that goes on sending and never ends its side is cut off, not waited for")
    func closeDoesNotWaitForeverForThePeer() async throws {
        try await withServer(accept: { conn in
            try await conn.write("bye\n")
            // The handler returns: the framework closes, the peer still open.
        }) { address in
            let client = try await TCP.connect(address)
            #expect(try await client.line() == "bye\n")
            await #expect(throws: SillyError.endOfStream) { try await client.read(count: 1, timeout: patience) }
            // The server's FIN came; this side keeps sending. The server reads and drops it for a
            // while, then closes for good, and its kernel answers the next bytes with a reset.
            var failure: SillyError?
            let start = ContinuousClock.now
            while failure == nil && ContinuousClock.now - start < patience {
                do throws(SillyError) {
                    try await client.write("more\n")
                } catch {
                    failure = error
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
            #expect(failure != nil)
            await client.close()
        }
    }

    @Test("shutdownOutput() after the peer's end still sends every byte written before it")
    func shutdownOutputAfterPeerEnd() async throws {
        var options = ConnectionOptions()
        options.sendQueueLimit = 64 * 1024 * 1024
        options.closeLinger = bulkCloseLinger
        let reply = 16 * 1024 * 1024  // more than the kernel's buffers take: most of it waits to be sent
        try await withServer(options: options, accept: { conn in
            _ = try await conn.read(until: "\n")
            await #expect(throws: SillyError.endOfStream) { try await conn.read(count: 1) }
            try await conn.write(ByteBuffer(repeating: UInt8(ascii: "r"), count: reply))
            await conn.shutdownOutput()
            #expect(await conn.isAlive == false)
        }) { address in
            let client = try await TCP.connect(address)
            try await client.write("go\n")
            await client.shutdownOutput()
            #expect(try await client.readToEnd().readableBytes == reply)
            await client.close()
        }
    }

    @Test("a receive limit stops reading from the socket while the buffer is full, and reading resumes; by default at 1 MiB",
          arguments: [4096, nil])
    func receiveLimit(setLimit: Int?) async throws {
        var options = ConnectionOptions()
        if let setLimit { options.receiveLimit = setLimit }
        let limit = try #require(options.receiveLimit)
        // More than the limit and both kernels' socket buffers take.
        let total = setLimit == nil ? 32 * 1024 * 1024 : 8 * 1024 * 1024
        let gate = Mailbox<Void>()
        let results = Mailbox<Int>()
        let received = Mailbox<ByteBuffer>()
        try await withServer(options: options, accept: { conn in
            _ = await gate.next()  // hold still until the client's queue backs up
            results.send(await conn.unreadBytes)
            var all = ByteBuffer()
            while all.readableBytes < total {
                var data = try await conn.readAvailable()
                all.writeBuffer(&data)
            }
            received.send(all)
        }) { address in
            var clientOptions = ConnectionOptions()
            clientOptions.sendQueueLimit = 2 * total  // the 8 MiB go in one write
            let client = try await TCP.connect(address, options: clientOptions)
            let pattern = (0..<65536).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
            var payload = ByteBuffer()
            for _ in 0..<(total / pattern.count) { payload.writeBytes(pattern) }
            try await client.write(payload)
            // Flow control at work: the kernel buffers fill, so the client still holds unsent bytes.
            #expect(await eventually { await client.unsentBytes > 0 })
            gate.send(())
            let unread = await results.next() ?? .max
            // The limit, plus at most one read cycle (4 reads of up to 64 KiB) past it.
            #expect(unread <= limit + 4 * 65536)
            #expect(await received.next() == payload)
            await client.close()
        }
    }
}

@Suite("Backpressure under a steady stream")
struct BackpressureStreamTests {
    @Test("a handler that waits for writability after every chunk streams 8 MiB to a reading client, losing nothing")
    func streamWithBackpressure() async throws {
        let chunk = ByteBuffer(bytes: (0..<65536).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        let chunks = 128
        try await withServer(accept: { conn in
            for _ in 0..<chunks {
                try await conn.write(chunk)
                try await conn.waitUntilWritable()
            }
            _ = try? await conn.read(until: "\n")
        }) { address in
            let client = try await TCP.connect(address)
            var received = 0
            var intact = true
            while received < chunks * chunk.readableBytes {
                let data = try await client.readAvailable(timeout: patience)
                let offset = received % chunk.readableBytes
                if data.readableBytes <= chunk.readableBytes - offset {
                    intact = intact && data.readableBytesView.elementsEqual(chunk.readableBytesView.dropFirst(offset).prefix(data.readableBytes))
                }
                received += data.readableBytes
            }
            #expect(received == chunks * chunk.readableBytes)
            #expect(intact)
            await client.close()
        }
    }
}
