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
    static func run(source: String, name: String = "script", _ arguments: [String] = []) throws -> ServerProcess {
        let script = try Self.script(source, name: name)
        return try ServerProcess([script.path] + arguments, addPort: false, executable: Self.silly, removing: script.folder)
    }
}

extension ServerProcess {
    /// The lines printed so far.
    var lines: [Substring] { self.log.split(separator: "\n") }

    /// Waits until the log contains `text` `count` times.
    func waitForLog(_ text: String, count: Int) async -> Bool {
        await eventually { self.log.components(separatedBy: text).count - 1 >= count }
    }
}
