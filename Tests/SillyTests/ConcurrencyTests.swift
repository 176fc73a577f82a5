import NIOCore
import NIOPosix
import Silly
import Synchronization
import SillyTestSupport
import Testing

@Suite("Many clients at once")
struct ConcurrencyTests {
    @Test("100 concurrent clients each echo 100 lines; every byte checked")
    func hundredClients() async throws {
        try await withServer(accept: echoLines) { address in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for client in 0..<100 {
                    group.addTask {
                        let conn = try await TCP.connect(address)
                        var matched = 0
                        for message in 0..<100 {
                            let line = "client \(client) message \(message) \(CryptoUtils.randomKey(Int.random(in: 0...40)))\n"
                            try await conn.write(line)
                            if try await conn.line() == line { matched += 1 }
                        }
                        await conn.close()
                        return matched
                    }
                }
                var total = 0
                for try await matched in group { total += matched }
                #expect(total == 100 * 100)
            }
        }
    }

    @Test("lines arriving on 64 connections at once: every reader resumed, every reply sent, in order")
    func burstAcrossConnections() async throws {
        // 64 readers resumed by one batch of socket events: more than the executor lets wait
        // before running them, so some run while SwiftNIO is still handling that batch.
        let accepted = Atomic<Int>(0)
        try await withServer(accept: { conn in
            accepted.add(1, ordering: .relaxed)
            try await echoLines(conn)
        }) { address in
            let port = Int(address.split(separator: ":").last!)!
            let sockets = (0..<64).map { _ in RawSocket() }
            for socket in sockets { #expect(socket.connect(port: port)) }
            #expect(await eventually { accepted.load(ordering: .relaxed) == 64 })
            for round in 0..<5 {
                let messages = sockets.indices.map { Array("round \(round) conn \($0)\nand a second line \($0)\n".utf8) }
                for (socket, message) in zip(sockets, messages) {
                    #expect(socket.sendAvailable(message) == message.count)
                }
                for (socket, message) in zip(sockets, messages) {
                    #expect(await offThePool { socket.receive(count: message.count) } == message)
                }
            }
        }
    }

    @Test("a handler that yields in a loop, never waiting for input, does not starve the other connections on its event loop")
    func yieldLoopDoesNotStarve() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)  // every connection on one loop
        let spinning = Mailbox<Void>()
        let stop = Atomic<Bool>(false)
        defer { stop.store(true, ordering: .relaxed) }  // however the test ends
        let listener = try await TCP.listen("127.0.0.1:0", group: group) { conn in
            let first = try await conn.read(until: "\n")
            guard String(buffer: first) == "spin\n" else {
                try await conn.write(first)
                return try await echoLines(conn)
            }
            spinning.send(())
            // Cooperative work: it lets others run at every step, and the loop's sockets too.
            while !stop.load(ordering: .relaxed) { await Task.yield() }
        }
        let spinner = try await TCP.connect("127.0.0.1:\(listener.port)")
        try await spinner.write("spin\n")
        #expect(await spinning.next() != nil)
        let other = try await TCP.connect("127.0.0.1:\(listener.port)")
        for line in ["hello\n", "still served\n"] {
            try await other.write(line)
            #expect(try await other.line() == line)
        }
        stop.store(true, ordering: .relaxed)
        await other.close()
        await spinner.close()
        await listener.close()
        try await group.shutdownGracefully()
    }

    @Test("pipelined lines from one client come back in order")
    func pipelined() async throws {
        try await withServer(accept: echoLines) { address in
            let conn = try await TCP.connect(address)
            let lines = (0..<2000).map { "line \($0)\n" }
            try await conn.write(contentsOf: lines.map { ByteBuffer(string: $0) })
            for line in lines {
                #expect(try await conn.line() == line)
            }
            await conn.close()
        }
    }

    @Test("a forked task on the connection's loop reads and writes without hopping, like an accept handler")
    func forkedClient() async throws {
        try await withServer(accept: echoLines) { address in
            let result = Mailbox<String>()
            Tasks.fork {
                do {
                    let conn = try await TCP.connect(address)
                    try await conn.write("from a fork\n")
                    result.send(try await conn.line())
                    await conn.close()
                } catch {
                    result.send("\(error)")
                }
            }
            #expect(await result.next() == "from a fork\n")
        }
    }
}
