import ArgumentParser
import Dispatch
import NIOCore
import NIOPosix
import Silly
import SillyLua

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `silly SCRIPT.lua [ARGS...]`: runs a Lua 5.4 script on the Silly core, as the tutorial's
/// `./silly echo-server.lua` does.
@main
struct SillyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "silly",
        abstract: "Run a Lua 5.4 script with the Silly modules (silly.net.tcp, silly.task, silly.time, silly.crypto.utils).",
        discussion: """
            The script runs until nothing is left to do: no listener open, no task alive or \
            sleeping, no timer pending. SIGINT or SIGTERM closes the listeners and connections \
            and ends it.
            """,
        version: "silly 0.1.0 (Lua 5.4, SwiftNIO)"
    )

    @Argument(help: "The Lua script to run.")
    var script: String

    @Argument(parsing: .captureForPassthrough, help: "Arguments for the script, in its `arg` table and `...`.")
    var arguments: [String] = []

    func run() throws {
        // Each connection is a descriptor: allow as many as the system lets this process have.
        FileLimit.raiseToHardLimit()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let exitCode = loop.makePromise(of: Int32.self)
        let script = self.script
        let arguments = self.arguments
        let started = loop.submit { () throws(ScriptError) -> NIOLoopBound<LuaRuntime> in
            let runtime = LuaRuntime(eventLoop: loop, exitCode: exitCode)
            try runtime.start(script: script, arguments: arguments)
            return NIOLoopBound(runtime, eventLoop: loop)
        }
        let runtime: NIOLoopBound<LuaRuntime>
        do {
            runtime = try started.wait()
        } catch {
            StandardError.write("silly: \(error)\n")
            Glibc.exit(1)
        }
        let signals = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { loop.execute { runtime.value.terminate() } }
            source.resume()
            return source
        }
        let code = (try? exitCode.futureResult.wait()) ?? 1
        withExtendedLifetime(signals) {}
        fflush(nil)  // every stream: what the script printed
        Glibc.exit(code)
    }
}
