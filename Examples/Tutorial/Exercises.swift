import Foundation
import Silly
import Synchronization

/// Exercise 1: count connections. Handlers run concurrently, on several threads: the count is
/// an atomic, so no update is lost.
enum ConnectionCounter {
    static func run(_ address: String) async throws {
        let connections = Atomic<Int>(0)
        let listener = try await TCP.listen(address) { conn in
            let now = connections.add(1, ordering: .relaxed).newValue
            print("New connection from \(conn.remoteAddress!), current connections: \(now)")
            while let line = try? await conn.read(until: "\n") {
                try? await conn.write(line)
            }
            let remaining = connections.subtract(1, ordering: .relaxed).newValue
            await conn.close()
            print("Connection closed \(conn.remoteAddress!), remaining connections: \(remaining)")
        }
        await listener.waitUntilClosed()
    }
}

/// Exercise 2: close a connection idle for 30 seconds, with `Time.after` re-armed on every line,
/// as the tutorial does. (A read timeout, `read(until:timeout:)`, does the same in one line.)
enum IdleTimeout {
    static func run(_ address: String) async throws {
        let listener = try await TCP.listen(address) { conn in
            print("New connection:", conn.remoteAddress!)
            let arm = {
                Time.after(.seconds(30)) {
                    print("Connection timeout:", conn.remoteAddress!)
                    await conn.close()
                }
            }
            var timeoutTimer = arm()
            while let line = try? await conn.read(until: "\n") {
                timeoutTimer.cancel()  // data activity: reset the timeout
                timeoutTimer = arm()
                try? await conn.write(line)
            }
            timeoutTimer.cancel()
            await conn.close()
        }
        await listener.waitUntilClosed()
    }
}

/// Exercise 3: count each connection's bytes and messages, and print them when it closes.
enum Statistics {
    static func run(_ address: String) async throws {
        let listener = try await TCP.listen(address) { conn in
            var bytesReceived = 0
            var bytesSent = 0
            var messages = 0
            print("New connection:", conn.remoteAddress!)
            while let line = try? await conn.read(until: "\n") {
                bytesReceived += line.readableBytes
                messages += 1
                guard (try? await conn.write(line)) != nil else { break }
                bytesSent += line.readableBytes
            }
            await conn.close()
            print("Connection \(conn.remoteAddress!) statistics: received \(bytesReceived) bytes, sent \(bytesSent) bytes, messages \(messages)")
        }
        await listener.waitUntilClosed()
    }
}

/// Exercise 4: a small command protocol — help, time, quit — and `Echo: ` for anything else.
enum CommandProtocolExample {
    static func run(_ address: String) async throws {
        let listener = try await TCP.listen(address) { conn in
            try await conn.write("Welcome to Silly Echo Server!\n")
            try await conn.write("Type 'help' for commands\n")
            while true {
                try await conn.write("> ")
                guard let line = try? await conn.readString(until: "\n") else { break }
                let cmd = line.trimmingCharacters(in: .whitespacesAndNewlines)  // trim whitespace
                if cmd == "help" {
                    try await conn.write("Command list:\n")
                    try await conn.write("  help - Show this help\n")
                    try await conn.write("  time - Show server time\n")
                    try await conn.write("  quit - Disconnect\n")
                } else if cmd == "time" {
                    try await conn.write("\(Date())\n")
                } else if cmd == "quit" {
                    try await conn.write("Goodbye!\n")
                    break
                } else {
                    try await conn.write("Echo: " + line)
                }
            }
            await conn.close()
        }
        await listener.waitUntilClosed()
    }
}

/// Exercise 5: the stress test — 100 clients × 100 messages, then the rate. Unlike the tutorial
/// (which timed with `os.time()`, whole seconds, and printed when client number 100 ended), it
/// times with a monotonic clock, reports once every client is done, and counts the clients that
/// failed (could not connect, or lost or got a wrong echo) instead of hiding them.
enum StressTest {
    static func run(_ address: String) async throws {
        let clientCount = 100
        let messagesPerClient = 100
        let start = ContinuousClock.now
        let (totalMessages, failures) = await withTaskGroup(of: (received: Int, failed: Bool).self) { group in
            for _ in 1...clientCount {
                group.addTask {
                    let conn: TCPConnection
                    do {
                        conn = try await TCP.connect(address)
                    } catch {
                        print("Connect failed:", error)
                        return (0, true)
                    }
                    var received = 0
                    for _ in 1...messagesPerClient {
                        guard (try? await conn.write("test message\n")) != nil,
                            let msg = try? await conn.readString(until: "\n"), msg == "test message\n"
                        else { break }
                        received += 1
                    }
                    await conn.close()
                    return (received, received < messagesPerClient)
                }
            }
            return await group.reduce((0, 0)) { total, client in (total.0 + client.received, total.1 + (client.failed ? 1 : 0)) }
        }
        let elapsed = ContinuousClock.now - start
        let seconds = elapsed / .seconds(1)
        print("Completed: \(totalMessages) messages, \(failures) failures, elapsed \(String(format: "%.3f", seconds)) seconds, \(String(format: "%.2f", Double(totalMessages) / seconds)) msg/s")
    }
}
