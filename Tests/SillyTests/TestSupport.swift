import NIOCore
import NIOPosix
import Silly
import SillyTestSupport
import Testing

/// Starts a listener on an ephemeral loopback port, runs `body` with its address, then closes it.
func withServer<T>(
    options: ConnectionOptions = ConnectionOptions(),
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
    accept: @escaping @Sendable (TCPConnection) async throws -> Void,
    _ body: (String) async throws -> T
) async throws -> T {
    let listener = try await TCP.listen("127.0.0.1:0", options: options, group: group, accept: accept)
    do {
        let result = try await body("127.0.0.1:\(listener.port)")
        await listener.close()
        return result
    } catch {
        await listener.close()
        throw error
    }
}

/// The tutorial's Step 2 handler: echo every line until reading fails.
@Sendable func echoLines(_ conn: TCPConnection) async throws {
    while true {
        let line = try await conn.read(until: "\n")
        try await conn.write(line)
    }
}

/// A loop of its own, for tests whose timers must not wait behind other tests' handlers on the
/// shared loops (kept for the test run: shutting a group down can hang).
let quietLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1)

/// Values a server handler reports to the test, received in order.
final class Mailbox<Value: Sendable>: Sendable {
    private let stream: AsyncStream<Value>
    private let continuation: AsyncStream<Value>.Continuation

    init() {
        (self.stream, self.continuation) = AsyncStream.makeStream(of: Value.self)
    }

    func send(_ value: Value) {
        self.continuation.yield(value)
    }

    /// The next value, or `nil` if none came within `patience`.
    func next() async -> Value? {
        let stream = self.stream
        return await withTaskGroup(of: Value?.self) { group in
            group.addTask {
                var iterator = stream.makeAsyncIterator()
                return await iterator.next()
            }
            group.addTask {
                try? await Task.sleep(for: patience)
                return nil
            }
            let first = await group.next()!
            group.cancelAll()
            return first
        }
    }
}

/// A raw NIO client for what the Silly API deliberately cannot do, like resetting a connection.
func rawClient(port: Int, linger0: Bool = false) async throws -> any Channel {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port).get()
    if linger0 {
        try await (channel as! any SocketOptionProvider).setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
    }
    return channel
}
