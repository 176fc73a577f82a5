import Logging
import NIOCore
import Silly

/// Why a connection ended, as its close line says.
enum CloseReason: String, CustomStringConvertible {
    case clientClosed = "client closed"
    case quit = "client quit"
    case idleTimeout = "idle timeout"
    case lineTooLong = "line too long"
    case readError = "read error"
    case writeError = "write error"
    case serverShutdown = "server shutdown"
    case closedByServer = "closed by server"

    var description: String { self.rawValue }
}

/// One client's conversation in the configured mode: the per-message path of `silly-echo`.
///
/// It lives in the connection task's frame for as long as the connection is open, so it holds
/// references (the connection, the server) rather than copies of the configuration; its loops
/// are inlined into one frame, and logging is done out of line, keeping that frame small
/// (an idle connection's memory is mostly its task's frames).
struct EchoSession {
    let connection: TCPConnection
    let server: EchoServer
    /// Where this connection's messages are counted: its event loop's counters; `nil` for a load
    /// balancer's health check, which is served but not counted as a client.
    private let traffic: TrafficCounters?
    private(set) var statistics = ConnectionStatistics()

    init(connection: TCPConnection, server: EchoServer, counted: Bool = true) {
        self.connection = connection
        self.server = server
        self.traffic = counted ? server.statistics.traffic(on: connection.eventLoop) : nil
    }

    private var configuration: EchoConfiguration { self.server.configuration }
    private var logger: Logger { self.server.logger }
    private var peer: String { self.connection.peerName }

    mutating func run() async -> CloseReason {
        switch self.configuration.mode {
        case .line: return await self.echoLines()
        case .command: return await self.commands()
        case .raw: return await self.echoBytes()
        }
    }

    /// The tutorial's Step 2 loop: a line in, the same line out.
    private mutating func echoLines() async -> CloseReason {
        while true {
            let line: ByteBuffer
            do {
                line = try await self.connection.read(until: "\n", timeout: self.configuration.idleTimeout)
            } catch {
                return self.readEnded(error)
            }
            if let failure = await self.send(line, answering: line) { return failure }
        }
    }

    /// The tutorial's fourth exercise: banner, prompt, help, time, quit.
    private mutating func commands() async -> CloseReason {
        let banner = ByteBuffer(string: CommandProtocol.banner)
        let prompt = ByteBuffer(string: CommandProtocol.prompt)
        if let failure = await self.send(banner) { return failure }
        while true {
            if let failure = await self.send(prompt) { return failure }
            let line: ByteBuffer
            do {
                line = try await self.connection.read(until: "\n", timeout: self.configuration.idleTimeout)
            } catch {
                return self.readEnded(error)
            }
            let reply = CommandProtocol.reply(to: line)
            if let failure = await self.send(reply.text, answering: line) { return failure }
            if reply.quits { return .quit }
        }
    }

    /// RFC 862: whatever arrives goes back, as it arrives.
    private mutating func echoBytes() async -> CloseReason {
        while true {
            let chunk: ByteBuffer
            do {
                chunk = try await self.connection.readAvailable(timeout: self.configuration.idleTimeout)
            } catch {
                return self.readEnded(error)
            }
            if let failure = await self.send(chunk, answering: chunk) { return failure }
        }
    }

    /// Counts a message for the connection's close line and the server's totals.
    @inline(__always)
    private mutating func record(received: Int, sent: Int, messages: Int = 1) {
        self.statistics.record(received: received, sent: sent, messages: messages)
        self.traffic?.record(received: received, sent: sent, messages: messages)
    }

    /// Queues `data`, the answer to `message` (`nil`: sent unasked, a banner or a prompt), and
    /// counts both; then waits while the client is not reading what it is sent: the handler
    /// stops reading, so the receive limit stops reading from its socket, and memory stays bounded.
    /// A client whose echoes do not drain within the idle timeout (it reads nothing, or too
    /// little) is idle too: its connection is closed, what was queued still sent if the client
    /// takes it (`--close-linger`), so it counts as sent. An answer that could not be queued
    /// counts its message's bytes as received only.
    @inline(__always)
    private mutating func send(_ data: ByteBuffer, answering message: ByteBuffer? = nil) async -> CloseReason? {
        let received = message?.readableBytes ?? 0
        // Handlers run on their connection's loop, where its own calls need no `await`: one
        // that returns at once still costs an executor switch (without these, three per line
        // instead of two). A failed connection is not writable: the wait reports the failure.
        let onLoop = self.connection.eventLoop.inEventLoop
        do {
            if onLoop { try self.connection.writeOnLoop(data) } else { try await self.connection.write(data) }
        } catch {
            self.record(received: received, sent: 0, messages: 0)
            return self.writeFailed(error)
        }
        self.record(received: received, sent: data.readableBytes, messages: message == nil ? 0 : 1)
        if onLoop && self.connection.isWritableOnLoop { return nil }
        do {
            try await self.connection.waitUntilWritable(timeout: self.configuration.idleTimeout)
            return nil
        } catch {
            return self.writeFailed(error)
        }
    }

    /// Logs how a connection ended; a health check's ending (HAProxy resets each one) at debug level.
    private func log(_ level: Logger.Level, _ message: @autoclosure () -> Logger.Message) {
        self.logger.log(level: self.traffic == nil ? .debug : level, message())
    }

    /// Counts what ended a client's connection (a health check's ending is not counted).
    private func countError(_ kind: ErrorKind) {
        if self.traffic != nil { self.server.statistics.count(kind) }
    }

    @inline(never)
    private func writeFailed(_ error: SillyError) -> CloseReason {
        if error == .activeClosed { return .closedByServer }
        self.countError(ErrorKind(error))
        if error == .timedOut {
            self.log(.info, "Idle timeout [\(self.peer)]: the client read too little of its echoes for \(self.configuration.idleTimeout?.logDescription ?? "ever")")
            return .idleTimeout
        }
        self.log(.info, "Write error [\(self.peer)] -> \(error)")
        return .writeError
    }

    @inline(never)
    private func readEnded(_ error: SillyError) -> CloseReason {
        switch error {
        case .endOfStream:
            return .clientClosed
        case .timedOut:
            self.countError(ErrorKind(error))
            let silence = self.configuration.mode == .raw ? "no data" : "no complete line"
            self.log(.info, "Idle timeout [\(self.peer)]: \(silence) for \(self.configuration.idleTimeout?.logDescription ?? "ever")")
            return .idleTimeout
        case .lineTooLong(let limit):
            self.countError(ErrorKind(error))
            self.log(.warning, "Line too long [\(self.peer)]: no newline within \(limit) bytes")
            return .lineTooLong
        case .activeClosed:
            return .closedByServer
        default:
            self.countError(ErrorKind(error))
            self.log(.info, "Read error [\(self.peer)] -> \(error)")
            return .readError
        }
    }
}
