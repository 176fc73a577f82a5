import Foundation
import Silly
import SillyBench
import SillyTestSupport
import Synchronization
import Testing

/// silly-bench, the built executable, against servers started in the test.
@Suite("silly-bench: counts, corruption, failures, JSON, duration")
struct BenchTests {
    static let bench = builtExecutable("silly-bench")

    /// Runs silly-bench with `arguments` (plus `--json`) to its end; returns its exit status and figures.
    static func run(_ arguments: [String]) async throws -> (status: Int32, figures: [String: Any]) {
        // A generous echo timeout: a loaded test machine must not turn into counted timeouts.
        let process = try ServerProcess(arguments + ["--json", "--timeout", "60s"], addPort: false, executable: Self.bench)
        let status = try #require(await process.exitStatus(), "silly-bench did not finish")
        let data = Data(process.log.utf8)
        let figures = try #require((try? JSONSerialization.jsonObject(with: data)) as? [String: Any], "not JSON: \(process.log.debugDescription) \(process.errorLog)")
        return (status, figures)
    }

    @Test("every message of every client is counted against an honest server; exit 0")
    func correctCounts() async throws {
        let listener = try await TCP.listen("127.0.0.1:0") { conn in
            while true { try await conn.write(try await conn.read(until: "\n")) }
        }
        let (status, figures) = try await Self.run(
            ["--addr", "127.0.0.1:\(listener.port)", "--clients", "20", "--messages", "50", "--pipeline", "4", "--size", "100"])
        #expect(status == 0)
        #expect(figures["messages"] as? Int == 1000)
        #expect(figures["bytes"] as? Int == 100_000)
        #expect(figures["errors_total"] as? Int == 0)
        #expect((figures["messages_per_second"] as? Double ?? 0) > 0)
        let latency = try #require(figures["latency_microseconds"] as? [String: Any])
        #expect((latency["p50"] as? Int ?? 0) > 0)
        #expect((latency["max"] as? Int ?? 0) >= (latency["p99"] as? Int ?? .max))
        await listener.close()
    }

    @Test("a server that corrupts one byte is caught: the mismatch is counted, exit 1")
    func corruption() async throws {
        let listener = try await TCP.listen("127.0.0.1:0") { conn in
            var count = 0
            while true {
                var line = try await conn.read(until: "\n")
                count += 1
                if count == 7, let byte = line.getInteger(at: line.readerIndex, as: UInt8.self) {
                    var copy = ByteBuffer(buffer: line)
                    copy.setInteger(byte ^ 0x20, at: copy.readerIndex)
                    line = copy
                }
                try await conn.write(line)
            }
        }
        let (status, figures) = try await Self.run(["--addr", "127.0.0.1:\(listener.port)", "--clients", "3", "--messages", "20"])
        #expect(status == 1)
        let errors = try #require(figures["errors"] as? [String: Any])
        #expect(errors["mismatch"] as? Int == 3, "figures: \(figures)")
        #expect(figures["messages"] as? Int == 3 * 6)
        await listener.close()
    }

    @Test("every message is its own line: a duplicated echo, a line after the last echo, unrequested lines are mismatches")
    func duplicatesAndExtras() async throws {
        // Each line echoed twice: the second copy arrives where the next message's echo is due.
        let twice = try await TCP.listen("127.0.0.1:0") { conn in
            while true {
                let line = try await conn.read(until: "\n")
                try await conn.write(line)
                try await conn.write(line)
            }
        }
        for size in ["2", "13", "100"] {
            let (status, figures) = try await Self.run(
                ["--addr", "127.0.0.1:\(twice.port)", "--clients", "2", "--messages", "5", "--size", size])
            #expect(status == 1, "--size \(size): \(figures)")
            #expect((figures["errors"] as? [String: Any])?["mismatch"] as? Int == 2, "--size \(size): \(figures)")
            #expect(figures["messages"] as? Int == 2, "--size \(size): \(figures)")
        }
        await twice.close()

        // An honest echo, then one line more with the last echo: already buffered when the client ends.
        let extra = try await TCP.listen("127.0.0.1:0") { conn in
            for count in 1... {
                var line = try await conn.read(until: "\n")
                if count == 3 { line.writeString("extra\n") }
                try await conn.write(line)
            }
        }
        let (status, figures) = try await Self.run(["--addr", "127.0.0.1:\(extra.port)", "--clients", "1", "--messages", "3"])
        #expect(status == 1)
        #expect(figures["messages"] as? Int == 3)
        #expect((figures["errors"] as? [String: Any])?["mismatch"] as? Int == 1, "\(figures)")
        #expect(figures["failures"] as? [String: Int] == [#"mismatch: bytes after the last echo: "extra\n" (6 bytes)"#: 1], "\(figures)")
        await extra.close()

        // A server that never echoes but sends the tutorial's line over and over.
        let chatty = try await TCP.listen("127.0.0.1:0") { conn in
            for _ in 0..<100 { try await conn.write("test message\n") }
            while true { _ = try await conn.read(until: "\n") }
        }
        let chattyRun = try await Self.run(["--addr", "127.0.0.1:\(chatty.port)", "--clients", "3", "--messages", "10"])
        #expect(chattyRun.status == 1)
        #expect((chattyRun.figures["errors"] as? [String: Any])?["mismatch"] as? Int == 3, "\(chattyRun.figures)")
        #expect(chattyRun.figures["messages"] as? Int == 0)
        await chatty.close()
    }

    @Test("the smallest --size works against an honest server")
    func smallestSize() async throws {
        let listener = try await TCP.listen("127.0.0.1:0") { conn in
            while true { try await conn.write(try await conn.read(until: "\n")) }
        }
        let (status, figures) = try await Self.run(
            ["--addr", "127.0.0.1:\(listener.port)", "--clients", "3", "--messages", "30", "--pipeline", "4", "--size", "2"])
        #expect(status == 0, "\(figures)")
        #expect(figures["messages"] as? Int == 90)
        await listener.close()
    }

    @Test("a refusal shorter than --size is quoted as a mismatch, not hidden behind the end of the stream")
    func shortRefusal() async throws {
        let full = try await TCP.listen("127.0.0.1:0") { conn in
            try await conn.write("Server is full, try again later\n")
        }
        let (status, figures) = try await Self.run(
            ["--addr", "127.0.0.1:\(full.port)", "--clients", "2", "--messages", "3", "--size", "100"])
        #expect(status == 1)
        #expect((figures["errors"] as? [String: Any])?["mismatch"] as? Int == 2, "\(figures)")
        #expect(
            figures["failures"] as? [String: Int]
                == [#"mismatch: an echo cut short by the end of the stream: "Server is full, try again later\n""#: 2],
            "\(figures)")
        await full.close()
    }

    @Test("numbers too large to run are usage errors (exit 64), not a crash")
    func upperBounds() async throws {
        try await expectUsageError(["--size", "1000000000000000"], "--size must be at most 67108864 (64 MiB)", executable: Self.bench)
        try await expectUsageError(["--pipeline", "1000000000000000"], "--pipeline must be at most 65536", executable: Self.bench)
        try await expectUsageError(["--threads", "5000"], "--threads must be at most 256", executable: Self.bench)
        try await expectUsageError(["--clients", "1000000000000"], "--clients must be at most 1000000", executable: Self.bench)
        try await expectUsageError(
            ["--clients", "100", "--size", "67108864", "--pipeline", "16"],
            "--clients × --size × --pipeline is 102400 MiB in flight: at most 4096 MiB", executable: Self.bench)
    }

    @Test("a malformed --addr is a usage error naming the address (exit 64)")
    func badAddress() async throws {
        try await expectUsageError(["--addr", "127.0.0.1"], "--addr: invalid address '127.0.0.1': missing ':port'", executable: Self.bench)
        try await expectUsageError(
            ["--addr", "127.0.0.1:99999"], "--addr: invalid address '127.0.0.1:99999': port 99999 is out of range", executable: Self.bench)
        try await expectUsageError(["--addr", "127.0.0.1:0"], "--addr: invalid address '127.0.0.1:0': port 0", executable: Self.bench)
    }

    @Test("--progress and --json both print on standard output: together they are a usage error")
    func progressWithJSON() async throws {
        try await expectUsageError(["--progress", "--json"], "--progress and --json both print on standard output", executable: Self.bench)
    }

    @Test("--duration must be more than 0; with it, --messages is not checked (it is ignored)")
    func durationArguments() async throws {
        try await expectUsageError(["--duration", "0s"], "--duration must be more than 0", executable: Self.bench)
        let listener = try await TCP.listen("127.0.0.1:0") { conn in
            while true { try await conn.write(try await conn.read(until: "\n")) }
        }
        let (status, figures) = try await Self.run(
            ["--addr", "127.0.0.1:\(listener.port)", "--clients", "2", "--duration", "200ms", "--messages", "0"])
        #expect(status == 0, "\(figures)")
        #expect((figures["messages"] as? Int ?? 0) > 0)
        await listener.close()
    }

    @Test("a server that closes mid-run is reported as an error, not a hang")
    func serverCloses() async throws {
        let listener = try await TCP.listen("127.0.0.1:0") { conn in
            for _ in 0..<10 { try await conn.write(try await conn.read(until: "\n")) }
        }
        let (status, figures) = try await Self.run(["--addr", "127.0.0.1:\(listener.port)", "--clients", "5", "--messages", "100"])
        #expect(status == 1)
        let errors = try #require(figures["errors"] as? [String: Any])
        #expect((errors["closed"] as? Int ?? 0) + (errors["reset"] as? Int ?? 0) == 5, "figures: \(figures)")
        #expect(figures["messages"] as? Int == 50)
        await listener.close()
    }

    @Test("nothing listening: every connect fails and is counted")
    func nothingListening() async throws {
        let address = "127.0.0.1:\(RawSocket.freePortBelowEphemeralRange())"
        let (status, figures) = try await Self.run(["--addr", address, "--clients", "4"])
        #expect(status == 1)
        #expect((figures["errors"] as? [String: Any])?["connect"] as? Int == 4)
        #expect(figures["messages"] as? Int == 0)
    }

    @Test("--duration runs until the time is up, then stops by itself")
    func duration() async throws {
        let listener = try await TCP.listen("127.0.0.1:0") { conn in
            while true { try await conn.write(try await conn.read(until: "\n")) }
        }
        let (status, figures) = try await Self.run(
            ["--addr", "127.0.0.1:\(listener.port)", "--clients", "10", "--duration", "1s"])
        #expect(status == 0)
        #expect((figures["elapsed_seconds"] as? Double ?? 0) >= 1.0)
        #expect(figures["duration_seconds"] as? Double == 1.0)
        #expect((figures["messages"] as? Int ?? 0) > 0)
        await listener.close()
    }

    @Test("Ctrl-C stops early: every line sent is still echoed and checked, the report comes, exit 130")
    func interrupted() async throws {
        let echoed = Atomic<Int>(0)
        let listener = try await TCP.listen("127.0.0.1:0") { conn in
            while true {
                try await conn.write(try await conn.read(until: "\n"))
                echoed.add(1, ordering: .relaxed)
            }
        }
        let process = try ServerProcess(
            ["--addr", "127.0.0.1:\(listener.port)", "--clients", "10", "--pipeline", "4", "--duration", "600s", "--json", "--timeout", "60s"],
            addPort: false, executable: Self.bench)
        #expect(await eventually(within: programPatience) { echoed.load(ordering: .relaxed) >= 1000 })
        let status = await process.stop(signal: SIGINT)
        #expect(status == 130, "\(process.errorLog)")
        let figures = try #require((try? JSONSerialization.jsonObject(with: Data(process.log.utf8))) as? [String: Any], "not JSON: \(process.log.debugDescription) \(process.errorLog)")
        #expect(figures["interrupted"] as? Bool == true)
        #expect(figures["errors_total"] as? Int == 0, "\(figures)")
        // The clients stopped sending and waited for what was in flight: the server echoed
        // exactly the lines the report counts as verified.
        #expect(await eventually { echoed.load(ordering: .relaxed) == figures["messages"] as? Int })
        #expect(process.errorLog.contains("stopping: waiting for the echoes in flight"))
        await listener.close()
    }

    @Test("failures are reported with their reason: a refused connect, a server's refusal, a line past the send queue")
    func failureReasons() async throws {
        let port = RawSocket.freePortBelowEphemeralRange()
        let refused = try await Self.run(["--addr", "127.0.0.1:\(port)", "--clients", "3"])
        #expect(refused.status == 1)
        let refusedFailures = try #require(refused.figures["failures"] as? [String: Int])
        #expect(refusedFailures == ["connect: connection refused: 127.0.0.1:\(port)": 3], "\(refusedFailures)")

        let full = try await TCP.listen("127.0.0.1:0") { conn in
            try await conn.write("Server is full, try again later\n")
        }
        let process = try ServerProcess(["--addr", "127.0.0.1:\(full.port)", "--clients", "2", "--messages", "3", "--timeout", "60s"],
                                        addPort: false, executable: Self.bench)
        #expect(await process.exitStatus() == 1)
        #expect(process.log.contains(#"2 × mismatch: an echo came back different: "Server is full, try again later\n""#), "\(process.log)")
        await full.close()

        // One 5 MB line is more than the default 4 MiB send queue: the client's queue is sized to its pipeline.
        var large = ConnectionOptions()
        large.maxLineLength = 8 << 20
        large.sendQueueLimit = 16 << 20
        let echo = try await TCP.listen("127.0.0.1:0", options: large) { conn in
            while true { try await conn.write(try await conn.read(until: "\n")) }
        }
        let run = try await Self.run(["--addr", "127.0.0.1:\(echo.port)", "--clients", "1", "--messages", "2", "--size", "5000000"])
        #expect(run.status == 0, "\(run.figures)")
        #expect(run.figures["messages"] as? Int == 2)
        await echo.close()
    }

    @Test("clients that fail the same way are one reason with a count, quoting one example: each client's own line cut short")
    func failuresGroupByKind() async throws {
        // Every echo cut short after 5 bytes, and the connection closed: each client gets the
        // start of its own line ("c0-de", "c1-ef", …), so what came differs from client to client.
        let listener = try await TCP.listen("127.0.0.1:0") { conn in
            let line = try await conn.read(until: "\n")
            try await conn.write(line.getSlice(at: line.readerIndex, length: 5)!)
        }
        let arguments = ["--addr", "127.0.0.1:\(listener.port)", "--clients", "20", "--messages", "3", "--size", "20"]
        let reason = #"mismatch: an echo cut short by the end of the stream, e.g. "c0-de""#
        let (status, figures) = try await Self.run(arguments)
        #expect(status == 1)
        #expect(figures["failures"] as? [String: Int] == [reason: 20], "\(figures)")
        let process = try ServerProcess(arguments + ["--timeout", "60s"], addPort: false, executable: Self.bench)
        #expect(await process.exitStatus() == 1)
        let reasons = process.log.split(separator: "\n").map(String.init).filter { $0.contains(" × ") || $0.contains("more reasons") }
        #expect(reasons == ["    20 × \(reason)"], "\(process.log)")
        await listener.close()
    }

    @Test("what came instead of an echo is quoted as it reads: an apostrophe as is; control characters, bytes not UTF-8, quotes and backslashes escaped")
    func quotedAsItReads() async throws {
        let listener = try await TCP.listen("127.0.0.1:0") { conn in
            var reply = ByteBuffer(string: "it's \"full\"\t\u{1B}[1m é ")
            reply.writeBytes([0xFF, UInt8(ascii: "\\"), UInt8(ascii: "\n")])
            try await conn.write(reply)
        }
        let process = try ServerProcess(
            ["--addr", "127.0.0.1:\(listener.port)", "--clients", "1", "--messages", "1", "--size", "100", "--timeout", "60s"],
            addPort: false, executable: Self.bench)
        #expect(await process.exitStatus() == 1)
        #expect(process.log.contains(#""it's \"full\"\t\u{1B}[1m é \xFF\\\n""#), "\(process.log)")
        #expect(!process.log.contains(#"\'"#), "\(process.log)")
        await listener.close()
    }

    @Test("percentiles of nothing measured are n/a in the text and null in the JSON, not 0")
    func nothingMeasured() async throws {
        // Every connect succeeds; no echo ever comes back.
        let silent = try await TCP.listen("127.0.0.1:0") { _ in }
        let arguments = ["--addr", "127.0.0.1:\(silent.port)", "--clients", "3", "--messages", "2"]
        let (status, figures) = try await Self.run(arguments)
        #expect(status == 1)
        #expect(figures["messages"] as? Int == 0)
        #expect(figures["latency_microseconds"] is NSNull, "\(figures)")
        let connect = try #require(figures["connect_microseconds"] as? [String: Any], "\(figures)")
        #expect(connect["p50"] is Int && connect["max"] is Int, "\(connect)")
        let process = try ServerProcess(arguments + ["--timeout", "60s"], addPort: false, executable: Self.bench)
        #expect(await process.exitStatus() == 1)
        #expect(process.log.contains("\n  latency      n/a: no echo completed\n"), "\(process.log)")
        #expect(process.log.contains("\n  connect      min "), "\(process.log)")
        await silent.close()

        // Nothing listening: no connect time either.
        let nowhere = try await Self.run(["--addr", "127.0.0.1:\(RawSocket.freePortBelowEphemeralRange())", "--clients", "2"])
        #expect(nowhere.status == 1)
        #expect(nowhere.figures["latency_microseconds"] is NSNull, "\(nowhere.figures)")
        #expect(nowhere.figures["connect_microseconds"] is NSNull, "\(nowhere.figures)")
    }

    @Test("Ctrl-C while the progress line shows: the stopping message starts a line of its own")
    func stoppingOnAFreshLine() async throws {
        let listener = try await TCP.listen("127.0.0.1:0") { conn in
            while true { try await conn.write(try await conn.read(until: "\n")) }
        }
        // Standard error into standard output's pipe: the two interleave as on one terminal.
        let process = try ServerProcess(
            ["--addr", "127.0.0.1:\(listener.port)", "--clients", "2", "--duration", "600s", "--progress", "--timeout", "60s"],
            addPort: false, executable: Self.bench, mergingErrors: true)
        #expect(await process.waitForLog(" msg/s"), "no progress line: \(process.log.debugDescription)")
        #expect(await process.stop(signal: SIGINT) == 130, "\(process.log.debugDescription)")
        let log = process.log
        let stopping = try #require(log.range(of: "silly-bench: stopping: "), "\(log.debugDescription)")
        let before = log[..<stopping.lowerBound]
        #expect(before.contains(" msg/s") && before.hasSuffix("\n"), "\(log.debugDescription)")
        await listener.close()
    }

    @Test("the text report names every figure")
    func textReport() async throws {
        let listener = try await TCP.listen("127.0.0.1:0") { conn in
            while true { try await conn.write(try await conn.read(until: "\n")) }
        }
        let process = try ServerProcess(["--addr", "127.0.0.1:\(listener.port)", "--clients", "2", "--messages", "5", "--timeout", "60s"],
                                        addPort: false, executable: Self.bench)
        #expect(await process.exitStatus() == 0)
        for label in ["messages     10 verified", "throughput", "msg/s", "MB/s", "latency", "p99.9", "connect", "errors       connect 0"] {
            #expect(process.log.contains(label), "missing \(label) in \(process.log)")
        }
        await listener.close()
    }

    @Test("one client, one message: the summary says so in the singular; the usage line is silly-bench [<options>]")
    func singular() async throws {
        let listener = try await TCP.listen("127.0.0.1:0") { conn in
            while true { try await conn.write(try await conn.read(until: "\n")) }
        }
        let process = try ServerProcess(["--addr", "127.0.0.1:\(listener.port)", "--clients", "1", "--messages", "1", "--timeout", "60s"],
                                        addPort: false, executable: Self.bench)
        #expect(await process.exitStatus() == 0)
        #expect(process.log.contains("silly-bench: 1 client, 1 message each, 13 bytes per message"), "\(process.log)")
        await listener.close()
        try await expectUsageError(["--clients", "0"], "Usage: silly-bench [<options>]", executable: Self.bench)
    }

    @Test("over several event loops, every verified echo is one latency sample (one histogram per loop, merged)")
    func latencyOverLoops() async throws {
        let listener = try await TCP.listen("127.0.0.1:0") { conn in
            while true { try await conn.write(try await conn.read(until: "\n")) }
        }
        var configuration = LoadConfiguration()
        configuration.address = "127.0.0.1:\(listener.port)"
        configuration.clients = 7
        configuration.messages = 30
        configuration.pipeline = 2
        configuration.threads = 3
        configuration.readTimeout = .seconds(60)
        let result = await LoadGenerator(configuration: configuration).run()
        #expect(result.errors.total == 0)
        #expect(result.messages == 210)
        #expect(result.latency.totalCount == 210)
        #expect(result.connect.totalCount == 7)
        await listener.close()
    }
}
