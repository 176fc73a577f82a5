import Foundation
import Silly
import SillyTestSupport
import Testing

/// The built `silly` script runner, and what its tests share.
enum Lua {
    static let silly = builtExecutable("silly")

    /// The package's root folder (for `Examples/lua`), and the shared kit beside it.
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let sharedKit = packageRoot.deletingLastPathComponent().appendingPathComponent("shared")

    /// Path of a script in `Examples/lua`.
    static func example(_ name: String) -> String {
        packageRoot.appendingPathComponent("Examples/lua/\(name)").path
    }

    /// Runs `silly SCRIPT ARGS...`.
    static func run(_ script: String, _ arguments: [String] = []) throws -> ServerProcess {
        try ServerProcess([script] + arguments, addPort: false, executable: Self.silly)
    }

    /// Writes `source` as `name.lua` in a fresh temporary folder (returned, to remove).
    static func script(_ source: String, name: String = "script") throws -> (path: String, folder: URL) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("silly-lua-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let file = folder.appendingPathComponent("\(name).lua")
        try source.write(to: file, atomically: true, encoding: .utf8)
        return (file.path, folder)
    }

    /// Runs `source`, saved as `name.lua`, with `arguments`; the file goes with the process object.
    /// `niced`: at the lowest priority (`nice -n 19`), for a script that keeps a core busy on
    /// purpose: it still runs, but the other tests' processes and threads go first.
    static func run(source: String, name: String = "script", _ arguments: [String] = [], niced: Bool = false) throws -> ServerProcess {
        let script = try Self.script(source, name: name)
        if niced, let nice = OutsideClient.path("nice") {
            return try ServerProcess(["-n", "19", Self.silly, script.path] + arguments, addPort: false, executable: nice, removing: script.folder)
        }
        return try ServerProcess([script.path] + arguments, addPort: false, executable: Self.silly, removing: script.folder)
    }
}

extension ServerProcess {
    /// The lines printed so far.
    var lines: [Substring] { self.log.split(separator: "\n") }

    /// Waits until the log contains `text` `count` times.
    func waitForLog(_ text: String, count: Int) async -> Bool {
        await eventually(within: programPatience) { self.log.components(separatedBy: text).count - 1 >= count }
    }
}

/// What a user sees of the tutorial's extension exercises, checked the same way whether the
/// program is `Examples/lua` or the seed's own code. `first` is a connection already open.
enum TutorialChecks {
    /// Extension 1: the count goes up with each connection and down as they close.
    static func counter(_ server: ServerProcess, first: TCPConnection, address: String) async throws {
        #expect(await server.waitForLog("current connections: 1"))
        let second = try await TCP.connect(address)
        #expect(await server.waitForLog("current connections: 2"))
        try await second.write("ping\n")
        #expect(try await second.line() == "ping\n")
        await first.close()
        #expect(await server.waitForLog("remaining connections: 1"))
        await second.close()
        #expect(await server.waitForLog("remaining connections: 0"))
    }

    /// Extension 3: three lines echoed, then the statistics line once the client leaves.
    static func statistics(_ server: ServerProcess, client: TCPConnection) async throws {
        for line in ["one\n", "two\n", "three\n"] {
            try await client.write(line)
            #expect(try await client.line() == line)
        }
        await client.close()
        #expect(await server.waitForLog("statistics: received 14 bytes, sent 14 bytes, messages 3"), "log: \(server.log)")
    }

    /// Extension 4: banner, prompt, help (with telnet's spaces and CR trimmed), time, an echoed
    /// line, quit.
    static func commandProtocol(client: TCPConnection) async throws {
        func prompt() async throws {
            #expect(String(buffer: try await client.read(count: 2, timeout: patience)) == "> ")
        }
        #expect(try await client.line() == "Welcome to Silly Echo Server!\n")
        #expect(try await client.line() == "Type 'help' for commands\n")
        try await prompt()
        try await client.write("  help \r\n")
        #expect(try await client.line() == "Command list:\n")
        #expect(try await client.line() == " help - Show this help\n")
        #expect(try await client.line() == " time - Show server time\n")
        #expect(try await client.line() == " quit - Disconnect\n")
        try await prompt()
        try await client.write("time\n")
        let time = try await client.line()
        #expect(time.count > 10 && time.contains(":"), "os.date() line: \(time)")
        try await prompt()
        try await client.write("hi there\n")
        #expect(try await client.line() == "Echo: hi there\n")
        try await prompt()
        try await client.write("quit\n")
        #expect(try await client.line() == "Goodbye!\n")
        await #expect(throws: SillyError.endOfStream) { try await client.read(until: "\n", timeout: patience) }
    }
}
