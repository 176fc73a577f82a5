import Foundation
import Silly
import SillyTestSupport
import Testing

/// Bad input and faults against silly-echo: it keeps serving, and the bytes echoed are the bytes
/// owed. Random cases are seeded: a failure names its seed.
@Suite("Hardening: bad input and faults")
struct HardeningTests {
    /// A random binary stream: NUL, `\r` and `\n` frequent, every other byte value present.
    static func stream(seed: UInt64, length: ClosedRange<Int>) -> [UInt8] {
        var generator = SeededGenerator(seed: seed)
        return (0..<Int.random(in: length, using: &generator)).map { _ in
            switch UInt8.random(in: 0..<20, using: &generator) {
            case 0, 1: return UInt8(ascii: "\n")
            case 2: return UInt8(ascii: "\r")
            case 3: return 0
            default: return UInt8.random(in: 0...255, using: &generator)
            }
        }
    }

    /// Sends `bytes` in random chunks (seeded), then half-closes, and returns all that came back.
    static func exchange(_ bytes: [UInt8], seed: UInt64, address: String) async throws -> [UInt8] {
        let conn = try await TCP.connect(address)
        async let echoed = conn.readToEnd()
        var generator = SeededGenerator(seed: seed ^ 0xABCD)
        var offset = 0
        while offset < bytes.count {
            let size = Int.random(in: 1...3000, using: &generator)
            try await conn.write(bytes[offset..<min(offset + size, bytes.count)])
            try await conn.waitUntilWritable()
            offset += size
            if Int.random(in: 0..<8, using: &generator) == 0 { try await Task.sleep(for: .milliseconds(1)) }
        }
        await conn.shutdownOutput()
        let result = try await echoed
        await conn.close()
        return Array(buffer: result)
    }

    @Test("line mode echoes exactly the lines of random binary streams, however they are chunked", arguments: 1...8)
    func randomLines(seed: Int) async throws {
        let server = try ServerProcess(["--log-level", "notice"])
        let address = try await server.address()
        let bytes = Self.stream(seed: UInt64(seed), length: 1...200_000)
        let echoed = try await Self.exchange(bytes, seed: UInt64(seed), address: address)
        #expect(echoed.count == bytes.count, "seed \(seed)")
        #expect(echoed == bytes, "seed \(seed)")
        #expect(await server.stop() == 0)
    }

    @Test("raw mode echoes random binary streams byte for byte", arguments: 1...4)
    func randomRaw(seed: Int) async throws {
        let server = try ServerProcess(["--mode", "raw", "--log-level", "notice"])
        let address = try await server.address()
        let bytes = Self.stream(seed: UInt64(seed) + 1000, length: 1...500_000)
        let echoed = try await Self.exchange(bytes, seed: UInt64(seed), address: address)
        #expect(echoed == bytes, "seed \(seed)")
        #expect(await server.stop() == 0)
    }

    @Test("a flood of 100,000 empty lines comes back whole")
    func emptyLines() async throws {
        let server = try ServerProcess(["--log-level", "notice"])
        let bytes = [UInt8](repeating: UInt8(ascii: "\n"), count: 100_000)
        let echoed = try await Self.exchange(bytes, seed: 7, address: try await server.address())
        #expect(echoed == bytes)
        #expect(await server.stop() == 0)
    }

    @Test("1 MiB with no newline: that connection is closed with a log line, others are served, no descriptor is left")
    func endlessLine() async throws {
        let server = try ServerProcess([])
        let address = try await server.address()
        let other = try await TCP.connect(address)
        try await other.write("before\n")
        #expect(try await other.line() == "before\n")
        let baseline = server.openDescriptors
        let endless = try await TCP.connect(address)
        try await endless.write(ByteBuffer(repeating: UInt8(ascii: "y"), count: 1 << 20))
        await endless.shutdownOutput()  // the server's close ends on it, not on its 1 s cap
        // The server reads (and drops) the rest until this client is done: a clean end, no reset.
        #expect(try await endless.readToEnd().readableBytes == 0)
        #expect(await server.waitForLog("Line too long"))
        try await other.write("after\n")
        #expect(try await other.line() == "after\n")
        await endless.close()
        #expect(await eventually { server.openDescriptors == baseline })
        await other.close()
        #expect(await server.stop() == 0)
    }

    @Test("a client that resets in the middle of a large echo: the server logs it, keeps serving, leaks no descriptor")
    func resetMidEcho() async throws {
        let server = try ServerProcess([])
        let address = try await server.address()
        let port = Int(address.split(separator: ":").last!)!
        let other = try await TCP.connect(address)
        try await other.write("hello\n")
        #expect(try await other.line() == "hello\n")
        let baseline = server.openDescriptors
        for round in 0..<5 {
            let raw = RawSocket()
            try #require(raw.connect(port: port))
            let line = [UInt8](repeating: UInt8(ascii: "r"), count: 1023) + [UInt8(ascii: "\n")]
            var sent = 0
            // Send without reading until the socket takes no more: the server's replies back up.
            for _ in 0..<4096 {
                let taken = raw.sendAvailable(line)
                if taken <= 0 { break }
                sent += taken
            }
            #expect(sent > 0, "round \(round)")
            raw.resetOnClose()
        }
        // Each reset connection is closed and logged: as a reset if a read saw it first, as a
        // write error ("socket closed") if a write did.
        #expect(await server.waitForLog("Close connection", count: 5), "log: \(server.log)")
        try await other.write("still here\n")
        #expect(try await other.line() == "still here\n")
        #expect(await eventually { server.openDescriptors == baseline }, "descriptors: \(server.openDescriptors), baseline \(baseline)")
        await other.close()
        #expect(await server.stop() == 0)
    }

    @Test("8 MB in segments that each end mid-line: every line comes back and the server's memory stays flat")
    func streamWithoutLineBoundaries() async throws {
        let server = try ServerProcess(["--log-level", "notice"])
        let conn = try await TCP.connect(try await server.address())
        let line = [UInt8](repeating: UInt8(ascii: "z"), count: 999) + [UInt8(ascii: "\n")]
        let fourLines = Array([[UInt8]](repeating: line, count: 4).joined())
        let segments = 2_000  // half a line, then four lines at a time: 8 MB, never ending on a line boundary
        let total = 500 + segments * fourLines.count
        try await conn.write("warm up\n")
        #expect(try await conn.line() == "warm up\n")
        let baseline = server.residentKiB
        async let echoed: (count: Int, intact: Bool) = {
            var count = 0
            var intact = true
            while count < total {
                let chunk = try await conn.readAvailable(timeout: patience)
                intact = intact && chunk.readableBytesView.allSatisfy { $0 == UInt8(ascii: "z") || $0 == UInt8(ascii: "\n") }
                count += chunk.readableBytes
            }
            return (count, intact)
        }()
        var largestGrowth = 0
        try await conn.write(line.prefix(500))
        for index in 0..<segments {
            try await conn.write(fourLines)
            try await conn.waitUntilWritable()
            if index % 100 == 0 { largestGrowth = max(largestGrowth, server.residentKiB - baseline) }
        }
        let result = try await echoed
        #expect(result.count == total)
        #expect(result.intact)
        // Before the fix, the server's receive buffer kept every byte of the stream.
        #expect(largestGrowth < 4 * 1024, "the server grew by \(largestGrowth) KiB")
        await conn.close()
        #expect(await server.stop() == 0)
    }

    @Test("a client that closes while the server is writing to it: no error spreads, nothing leaks")
    func closeWhileWriting() async throws {
        let server = try ServerProcess(["--mode", "raw"])
        let address = try await server.address()
        let baseline = server.openDescriptors
        for _ in 0..<5 {
            let conn = try await TCP.connect(address)
            try await conn.write(ByteBuffer(repeating: UInt8(ascii: "w"), count: 2 << 20))
            _ = try await conn.read(count: 1000, timeout: patience)
            await conn.close()
        }
        let probe = try await TCP.connect(address)
        try await probe.write("ok")
        #expect(String(buffer: try await probe.read(count: 2, timeout: patience)) == "ok")
        await probe.close()
        #expect(await eventually { server.openDescriptors == baseline })
        #expect(await server.stop() == 0)
    }

    @Test("out of descriptors: the server logs it, serves the connections it has, and accepts the waiting ones once descriptors free up",
          .enabled(if: OutsideClient.enabled("prlimit"), "needs prlimit (util-linux)"))
    func descriptorExhaustion() async throws {
        let prlimit = try #require(OutsideClient.path("prlimit"))
        // An explicit --max-connections above what 64 descriptors allow: accepting runs out of them.
        let server = try ServerProcess(["--nofile=64:64", sillyEchoPath, "--addr", "127.0.0.1:0", "--max-connections", "1000"],
                                       executable: prlimit)
        let address = try await server.address()
        var held: [TCPConnection] = []
        for _ in 0..<100 {
            held.append(try await TCP.connect(address))  // the kernel completes them; the server cannot accept all
        }
        #expect(server.log.contains("--max-connections 1000 is more than the open-file limit allows (64, 32 of them kept for the server): past 32, clients wait unaccepted"))
        #expect(await server.waitForLog("accept failed on \(address): "))  // the port bound, not the 0 asked for
        #expect(await server.waitForLog("Too many open files"))
        // The first ones were accepted before the descriptors ran out: they are served.
        for (index, conn) in held.prefix(10).enumerated() {
            try await conn.write("held \(index)\n")
            #expect(try await conn.line() == "held \(index)\n")
        }
        for conn in held.prefix(60) { await conn.close() }
        // Those that waited in the kernel's queue are accepted now, and served.
        for (index, conn) in held.suffix(40).enumerated() {
            try await conn.write("waited \(index)\n")
            #expect(try await conn.line() == "waited \(index)\n")
        }
        for conn in held.suffix(40) { await conn.close() }
        #expect(await server.stop() == 0)
    }

    @Test("a client that sends but never reads what comes back is closed by the idle timeout, not held forever")
    func neverReads() async throws {
        // The server's reads have the same timeout: should this client stall that long before
        // the replies back up (a loaded machine), the server closes it for no complete line
        // instead, and the test tries again with twice the time.
        for seconds in [2, 4, 8] {
            // (A close that waits longer than the default 5 s for this client to read: a loaded
            // machine may stall it that long.)
            let server = try ServerProcess(["--idle-timeout", "\(seconds)s", "--close-linger", "60s"])
            let address = try await server.address()
            let port = Int(address.split(separator: ":").last!)!
            let raw = RawSocket()
            raw.setReceiveBuffer(4096)  // a small window: the server's replies back up after little data
            try #require(raw.connect(port: port))
            let line = [UInt8](repeating: UInt8(ascii: "n"), count: 1023) + [UInt8(ascii: "\n")]
            // Send, never reading, for as long as the socket takes more: once the kernel's buffers
            // are full, the server's replies back up, its handler waits for them to drain, and it
            // reads nothing meanwhile (so the sends stop being taken too).
            var sent = 0
            let start = ContinuousClock.now
            while !server.log.contains("Idle timeout [") && ContinuousClock.now - start < patience {
                let taken = raw.sendAvailable(line)
                if taken > 0 {
                    sent += taken
                } else {
                    try await Task.sleep(for: .milliseconds(10))
                }
            }
            #expect(sent > 0)
            #expect(await server.waitForLog("Idle timeout ["))
            // What was queued is still sent, and the close line counts all of it as sent.
            let echoed = raw.receive(count: sent + 1).count  // (until the server's end)
            #expect(await server.stop() == 0)
            if server.log.contains("no complete line for") { continue }
            #expect(server.log.contains("the client read too little of its echoes for \(seconds) s"), "after \(sent) bytes; log: \(server.log)")
            #expect(echoed > 0 && server.log.contains("sent \(echoed) bytes, messages \(echoed / 1024);"), "received \(echoed) bytes; log: \(server.log)")
            return
        }
        Issue.record("the server never found its replies backed up")
    }

    @Test("slow loris: a byte at a time with no newline is closed by the idle timeout")
    func slowLoris() async throws {
        // The timeout bounds the whole line, not the gap between bytes: trickling does not help.
        let server = try ServerProcess(["--idle-timeout", "1s"])
        let address = try await server.address()
        let loris = try await TCP.connect(address)
        var trickled = 0
        while !server.log.contains("(idle timeout)") && trickled < 200 {
            guard (try? await loris.write("z")) != nil else { break }
            trickled += 1
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(await server.waitForLog("(idle timeout)"), "after \(trickled) bytes")
        _ = try await loris.readToEnd()  // the server closed it: the stream ends
        await loris.close()
        // (Other clients of this server would be subject to the same 1 s timeout, which a loaded
        // machine can outlast: the tests above show others being served.)
        #expect(await server.stop() == 0)
    }
}

/// The programs as a user without privileges runs them: an option that needs one (SO_DEBUG
/// set by mistake for TCP_NODELAY needed CAP_NET_ADMIN) would fail every connection.
@Suite("Without root")
struct UnprivilegedTests {
    /// How to run a program as `nobody`: as is when the tests already run unprivileged, through
    /// util-linux's setpriv when they run as root; `nil` if setpriv is missing then.
    /// The lowest port anyone may bind (`net.ipv4.ip_unprivileged_port_start`).
    static let unprivilegedPortStart =
        Int(readWholeFile("/proc/sys/net/ipv4/ip_unprivileged_port_start").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 1024

    static let asNobody: [String]? =
        geteuid() != 0 ? [] : OutsideClient.path("setpriv").map { [$0, "--reuid=65534", "--regid=65534", "--clear-groups", "--"] }

    static func run(_ program: String, _ arguments: [String]) throws -> ServerProcess {
        let prefix = try #require(Self.asNobody)
        guard let wrapper = prefix.first else { return try ServerProcess(arguments, addPort: false, executable: program) }
        return try ServerProcess(Array(prefix.dropFirst()) + [program] + arguments, addPort: false, executable: wrapper)
    }

    @Test("silly-echo serves, its client connects and silly-bench runs, as an unprivileged user",
          .enabled(if: asNobody != nil, "the tests run as root and setpriv (util-linux) is missing to drop to nobody"))
    func unprivileged() async throws {
        let server = try Self.run(sillyEchoPath, ["--addr", "127.0.0.1:0"])
        let address = try await server.address()
        let conn = try await TCP.connect(address)
        try await conn.write("as nobody\n")
        #expect(try await conn.line() == "as nobody\n")
        await conn.close()
        let client = try Self.run(sillyEchoPath, ["client", address])
        #expect(await client.exitStatus() == 0, "\(client.errorLog)")
        #expect(client.log.contains("Received echo: Hello from client"), "\(client.log)")
        let bench = try Self.run(builtExecutable("silly-bench"), ["--addr", address, "--clients", "3", "--messages", "10"])
        #expect(await bench.exitStatus() == 0, "\(bench.log) \(bench.errorLog)")
        #expect(await server.stop() == 0)
    }

    @Test("a port only root may bind is refused with a message naming the address and the reason",
          .enabled(if: asNobody != nil, "the tests run as root and setpriv (util-linux) is missing to drop to nobody"),
          .enabled(if: unprivilegedPortStart > 1, "every port may be bound by anyone here (net.ipv4.ip_unprivileged_port_start)"))
    func privilegedPort() async throws {
        let address = "127.0.0.1:\(Self.unprivilegedPortStart - 1)"
        let server = try Self.run(sillyEchoPath, ["--addr", address])
        #expect(await server.exitStatus() == 1)
        #expect(server.errorLog.contains("silly-echo: cannot listen: permission denied: \(address) (a port below 1024 needs root or CAP_NET_BIND_SERVICE)"),
                "\(server.errorLog)")
    }
}
