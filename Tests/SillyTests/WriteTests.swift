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

    @Test("a receive limit stops reading from the socket while the buffer is full, and reading resumes")
    func receiveLimit() async throws {
        var options = ConnectionOptions()
        options.receiveLimit = 4096
        let total = 8 * 1024 * 1024
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
            let client = try await TCP.connect(address)
            let pattern = (0..<65536).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
            var payload = ByteBuffer()
            for _ in 0..<(total / pattern.count) { payload.writeBytes(pattern) }
            try await client.write(payload)
            // Flow control at work: the kernel buffers fill, so the client still holds unsent bytes.
            #expect(await eventually { await client.unsentBytes > 0 })
            gate.send(())
            let unread = await results.next() ?? .max
            // The limit, plus at most one read cycle (4 reads of up to 64 KiB) past it.
            #expect(unread <= 4096 + 4 * 65536)
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
