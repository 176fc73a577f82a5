import Foundation
import Silly
import SillyTestSupport
import Testing

/// Running silly-echo as a service: its threads, and processes sharing a port.
@Suite("silly-echo as a service: threads and a shared port")
struct ServiceTests {
    @Test("--reuse-port: two servers share one port and the kernel spreads connections; a server without it is refused")
    func reusePort() async throws {
        let first = try ServerProcess(["--reuse-port", "--threads", "1"])
        let address = try await first.address()
        let second = try ServerProcess(["--reuse-port", "--threads", "1", "--addr", address])
        #expect(await second.waitForLog("Listening on \(address)"), "second: \(second.errorLog)")
        let third = try ServerProcess(["--addr", address])
        #expect(await third.exitStatus() == 1)
        #expect(third.errorLog.contains("address already in use"))

        for index in 0..<64 {
            let conn = try await TCP.connect(address)
            try await conn.write("line \(index)\n")
            #expect(try await conn.line() == "line \(index)\n")
            await conn.close()
        }
        // Spread by a hash of each connection's addresses: 64 all on one side would be a 2^-63 chance.
        #expect(await first.waitForLog("Accept connection"))
        #expect(await second.waitForLog("Accept connection"))
        #expect(await first.stop() == 0)
        #expect(await second.stop() == 0)
    }

    @Test("--threads sets the event loops; a bad count is refused")
    func threads() async throws {
        let server = try ServerProcess(["--threads", "3"])
        let conn = try await TCP.connect(try await server.address())
        try await conn.write("three loops\n")
        #expect(try await conn.line() == "three loops\n")
        let threads = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(server.process.processIdentifier)/task")
            .compactMap { try? String(contentsOfFile: "/proc/\(server.process.processIdentifier)/task/\($0)/comm", encoding: .utf8) }
        // Event-loop threads are named NIO-ELT-<group>-#<n>: one group of exactly three serves.
        let groups = Dictionary(grouping: threads.filter { $0.hasPrefix("NIO-ELT-") }) { $0.split(separator: "-")[2] }
        #expect(groups.values.contains { $0.count == 3 }, "threads: \(threads)")
        await conn.close()
        #expect(await server.stop() == 0)

        try await expectUsageError(["--threads", "0"], "--threads must be at least 1")

        // More loops than the descriptors allow: one line and status 1 (SwiftNIO would trap).
        let bench = builtExecutable("silly-bench")
        for (program, arguments) in [(sillyEchoPath, "--addr 127.0.0.1:0 --threads 100"), (bench, "--addr 127.0.0.1:9 --threads 30")] {
            let tooMany = try ServerProcess(["-c", "ulimit -n 128 && exec \(program) \(arguments)"], addPort: false, executable: "/bin/sh")
            #expect(await tooMany.exitStatus() == 1, "\(program)")
            #expect(tooMany.errorLog.contains(program == bench ? "silly-bench: open-file limit too low (ulimit -n): 30 event-loop" : "silly-echo: --threads: 100 event-loop"),
                    "\(tooMany.errorLog)")
            #expect(tooMany.errorLog.contains(" event-loop thread(s) need 3 descriptors each, and 64 are kept for the process: more than the open-file limit (128) allows"),
                    "\(tooMany.errorLog)")
        }
    }

    @Test("an out-of-range or malformed duration (under a nanosecond, hexadecimal, signed) or a zero timeout is refused with a message, never a crash")
    func durationsOutOfRange() async throws {
        for arguments in [["--idle-timeout", "9999999999"], ["--shutdown-grace", "200000000m"],
                          ["--idle-timeout", "0.0000000001"], ["--idle-timeout", "0x10"], ["--stats-interval", "+5s"]] {
            try await expectUsageError(arguments, "is invalid for '\(arguments[0])")
        }
        try await expectUsageError(["--close-linger", "0s"], "--close-linger must be positive")
        let bench = builtExecutable("silly-bench")
        for (arguments, message) in [(["--duration", "1e10"], "is invalid for '--duration"),
                                     (["--timeout", "0"], "--timeout must be more than 0"),
                                     (["--connect-timeout", "0ms"], "--connect-timeout must be more than 0")] {
            try await expectUsageError(arguments, message, executable: bench)
        }
    }

    @Test("a negative value written as '--flag -1' gets the flag's own message, not 'missing value'")
    func negativeValues() async throws {
        for (arguments, message) in [(["--max-line", "-1"], "--max-line must be positive"),
                                     (["--backlog", "-5"], "--backlog must be positive"),
                                     (["--idle-timeout", "-5s"], "The value '-5s' is invalid for '--idle-timeout")] {
            try await expectUsageError(arguments, message)
        }
        try await expectUsageError(["--clients", "-3"], "--clients must be positive", executable: builtExecutable("silly-bench"))
    }
}
