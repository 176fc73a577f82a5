import Foundation
import NIOCore
import Silly
import SillyTestSupport
import Synchronization
import Testing

/// A built executable of this package, beside the test bundle in the build folder.
func builtExecutable(_ name: String) -> String {
    let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    var candidates = [here.appendingPathComponent(name).path]
    // Run from elsewhere (an IDE): the package's own debug build.
    let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    candidates.append(package.appendingPathComponent(".build/debug/\(name)").path)
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
}

let sillyEchoPath = builtExecutable("silly-echo")

/// A `silly-echo` process started by a test, its output gathered as it comes.
final class ServerProcess: Sendable {
    let process: ChildProcess
    private let output = TextBuffer()
    private let errors = TextBuffer()

    /// A scratch folder (a test's script) removed with this object.
    private let scratch: URL?

    /// Starts `silly-echo` with `arguments` (an `--addr` on port 0 is added unless given).
    /// With `mergingErrors`, standard error goes to ``log`` too, interleaved as on a terminal.
    init(
        _ arguments: [String], addPort: Bool = true, executable: String = sillyEchoPath, removing scratch: URL? = nil,
        mergingErrors: Bool = false
    ) throws {
        self.scratch = scratch
        let arguments = (addPort && !arguments.contains("--addr") ? ["--addr", "127.0.0.1:0"] : []) + arguments
        let process = try ChildProcess(executable, arguments, output: .pipe, error: mergingErrors ? .output : .pipe)
        self.process = process
        Self.gather(process.standardOutput!, into: self.output)
        if let standardError = process.standardError {
            Self.gather(standardError, into: self.errors)
        } else {
            self.errors.end()
        }
    }

    /// Reads `handle` to its end on a thread of its own, which keeps the handle alive until then.
    /// (A `readabilityHandler` can still be running when the pipe is released with this object:
    /// a use-after-free in Foundation that crashed a test run.)
    private static func gather(_ handle: FileHandle, into buffer: TextBuffer) {
        Thread.detachNewThread {
            while true {
                let data = handle.availableData
                if data.isEmpty { return buffer.end() }
                buffer.append(data)
            }
        }
    }

    deinit {
        if self.process.isRunning {
            self.process.terminate()
            // Reaped once it has exited, on a thread of its own (not left a zombie until the
            // test run ends); killed if SIGTERM has not ended it within `programPatience`.
            let process = self.process
            Thread.detachNewThread {
                let deadline = ContinuousClock.now + programPatience
                while process.isRunning && ContinuousClock.now < deadline { usleep(50_000) }
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                process.waitUntilExit()
            }
        }
        if let scratch = self.scratch { try? FileManager.default.removeItem(at: scratch) }
    }

    /// Everything the process printed to standard output so far.
    var log: String { self.output.text }
    /// Everything it printed to standard error so far.
    var errorLog: String { self.errors.text }

    /// Waits until standard output contains `text`; false if it did not within `programPatience`.
    @discardableResult
    func waitForLog(_ text: String) async -> Bool {
        await eventually(within: programPatience) { self.log.contains(text) }
    }

    /// Waits for the "Listening on" line and returns the address it names.
    func address() async throws -> String {
        #expect(await self.waitForLog("Listening on "), "no Listening line; log: \(self.log) \(self.errorLog)")
        let line = try #require(self.log.split(separator: "\n").first { $0.contains("Listening on ") })
        let rest = line[line.range(of: "Listening on ")!.upperBound...]
        return String(rest.prefix { $0 != " " })
    }

    /// Sends `signal` and waits for the process to exit; returns its exit status.
    func stop(signal: Int32 = SIGTERM) async -> Int32? {
        kill(self.process.processIdentifier, signal)
        return await self.exitStatus()
    }

    /// Waits for the process to exit by itself; returns its exit status, `nil` if it did not
    /// within `programPatience`.
    func exitStatus() async -> Int32? {
        guard await eventually(within: programPatience, { !self.process.isRunning }) else { return nil }
        // Its last output may still be in the pipes: read them to their ends (the process
        // has exited, so they end).
        #expect(await eventually { self.output.hasEnded && self.errors.hasEnded }, "output never ended")
        return self.process.terminationStatus
    }

    /// The process's resident memory in KiB.
    var residentKiB: Int {
        guard let status = try? String(contentsOfFile: "/proc/\(self.process.processIdentifier)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return 0 }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
    }
}

/// Text a process prints, gathered from its pipe's reader thread.
final class TextBuffer: Sendable {
    private let storage = Mutex((text: "", ended: false))

    func append(_ data: Data) {
        self.storage.withLock { $0.text += String(decoding: data, as: UTF8.self) }
    }

    /// Marks the stream's end: everything it carried has been appended.
    func end() {
        self.storage.withLock { $0.ended = true }
    }

    var text: String { self.storage.withLock { $0.text } }
    var hasEnded: Bool { self.storage.withLock { $0.ended } }
}

/// Runs `executable` with `arguments` and expects them refused as a usage error: exit status 64
/// (swift-argument-parser's) and `message` on standard error. silly-echo gets its port-0 `--addr`.
func expectUsageError(
    _ arguments: [String], _ message: String, executable: String = sillyEchoPath,
    sourceLocation: SourceLocation = #_sourceLocation
) async throws {
    let run = try ServerProcess(arguments, addPort: executable == sillyEchoPath, executable: executable)
    #expect(await run.exitStatus() == 64, "\(arguments)", sourceLocation: sourceLocation)
    #expect(run.errorLog.contains(message), "\(arguments): \(run.errorLog)", sourceLocation: sourceLocation)
}

/// Connects `clients` clients to a silly-echo at `address`, all at once, each sending a line:
/// how many got their echo, and how many were told the server is full.
func servedOrToldFull(clients: Int, at address: String) async throws -> (served: Int, told: Int) {
    var connections: [TCPConnection] = []
    for _ in 0..<clients {
        let client = try await TCP.connect(address)
        try await client.write("hi\n")
        connections.append(client)
    }
    var served = 0
    var told = 0
    for client in connections {
        let line = try await client.line()
        if line == "hi\n" { served += 1 } else if line.hasPrefix("Server is full") { told += 1 }
        await client.close()
    }
    return (served, told)
}

/// A client of the silly-echo at `address` that reads nothing and has sent 1 KiB lines until its
/// own send queue is full: its echoes have backed up, and the server's handler waits for them
/// to drain (which a shutdown's grace period lets it do).
func clientWithEchoesBackedUp(at address: String) async throws -> TCPConnection {
    let conn = try await TCP.connect(address)
    await conn.setReceiveLimit(1)
    let chunk = ByteBuffer(string: String(repeating: "x", count: 1023) + "\n")
    while true {
        do throws(SillyError) {
            try await conn.write(chunk)
        } catch {
            guard case .sendQueueFull = error else { throw error }
            return conn
        }
    }
}

/// Outside programs the tests drive as a user would: `.ci/run` installs them and sets
/// `SILLY_REQUIRE_CLIENTS=1`, under which a missing one fails its test instead of skipping it.
enum OutsideClient {
    static let required = ProcessInfo.processInfo.environment["SILLY_REQUIRE_CLIENTS"] == "1"

    static func path(_ name: String) -> String? {
        // Daemons such as haproxy live in sbin, which a user's PATH may lack.
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let folders = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"]
        return folders.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Whether a test needing `names` should run: they are installed, or they are required.
    static func enabled(_ names: String...) -> Bool {
        Self.required || names.allSatisfy { Self.path($0) != nil }
    }

    /// Runs `name` with `arguments`, `input` on its standard input; returns its standard output.
    /// It waits on a thread of its own: blocked on the concurrency pool's few threads (one per
    /// core), a client that takes seconds would stall every other test meanwhile.
    static func run(_ name: String, _ arguments: [String], input: String = "") async throws -> (output: String, status: Int32) {
        let path = try #require(Self.path(name), "\(name) is not installed (apt-get install it, or run Scripts/test)")
        return try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                do {
                    let process = try ChildProcess(path, arguments, input: .pipe, output: .pipe)
                    process.standardInput!.write(Data(input.utf8))
                    try process.standardInput!.close()
                    let output = process.standardOutput!.readDataToEndOfFile()
                    process.waitUntilExit()
                    continuation.resume(returning: (String(decoding: output, as: UTF8.self), process.terminationStatus))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}
