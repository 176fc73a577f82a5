import ArgumentParser
import CLuaShim
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
            and ends it (status 0); a second signal ends it at once. A script too busy in Lua to \
            let that happen is ended 8 s after the signal, or 1 s after a second one, with status \
            128 + the signal's number.
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
        // The signals are handled before the script starts: one busy from its first line is
        // still stopped (by the fallback below).
        let runtime = NIOLoopBoundBox.makeEmptyBox(valueType: LuaRuntime.self, eventLoop: loop)
        let signalQueue = DispatchQueue(label: "silly.signals")
        let received = SignalCount()
        let registered = DispatchSemaphore(value: 0)
        let signals = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: signalQueue)
            source.setEventHandler {
                loop.execute { runtime.value?.terminate() }
                // A script busy in Lua (a loop that never waits, a blocking call) keeps the loop
                // from running that: end the process anyway once the graceful end (2 s, and up
                // to 5 s to send what was written) is overdue, or soon after a second signal.
                received.value += 1
                signalQueue.asyncAfter(deadline: .now() + (received.value == 1 ? 8 : 1)) {
                    silly_flush_stdout_if_free()
                    Glibc._exit(128 + number)
                }
            }
            source.setRegistrationHandler { registered.signal() }
            source.resume()
            return source
        }
        // Dispatch registers the sources on a thread of its own: until it has, a signal would be
        // lost (the disposition is already SIG_IGN).
        for _ in signals { registered.wait() }
        let started = loop.submit { () throws(ScriptError) -> Bool in
            let created = LuaRuntime(eventLoop: loop, exitCode: exitCode)
            runtime.value = created
            try created.start(script: script, arguments: arguments)
            return true
        }
        do {
            _ = try started.wait()
        } catch {
            StandardError.write("silly: \(error)\n")
            Glibc.exit(1)
        }
        let code = (try? exitCode.futureResult.wait()) ?? 1
        withExtendedLifetime(signals) {}
        fflush(nil)  // every stream: what the script printed
        Glibc.exit(code)
    }
}

/// Signals received so far; touched only on the signal queue.
private final class SignalCount: @unchecked Sendable {
    var value = 0
}
