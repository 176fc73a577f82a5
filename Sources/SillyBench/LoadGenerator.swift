import Histogram
import NIOCore
import NIOPosix
import Silly
import Synchronization

/// The tutorial's stress test as a load generator: `clients` connections, each keeping
/// `pipeline` lines in flight, every echoed byte checked, latency in an HdrHistogram.
///
/// Each client is a task on an event loop of the shared group (all cores), with its connection
/// on the same loop, so the client costs what the server costs: a read and a write per batch.
public struct LoadGenerator: Sendable {
    public let configuration: LoadConfiguration
    /// Echoes verified so far, by all clients: for a progress line.
    public let progress = Progress()

    public init(configuration: LoadConfiguration) {
        self.configuration = configuration
    }

    /// Echoes verified so far; clients add in batches, so it lags a little.
    public final class Progress: Sendable {
        private let count = Atomic<Int>(0)
        func add(_ n: Int) { self.count.add(n, ordering: .relaxed) }
        public var messages: Int { self.count.load(ordering: .relaxed) }
    }

    /// Runs every client to its end and returns the merged result, timed on a monotonic clock
    /// from the first connect until the last client is done.
    public func run() async -> LoadResult {
        var result = LoadResult(configuration: self.configuration)
        let start = ContinuousClock.now
        let deadline = self.configuration.duration.map { NIODeadline.now() + $0.nanoseconds }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, self.configuration.threads))
        defer { group.shutdownGracefully { _ in } }
        let clients: [Task<ClientResult, Never>] = (0..<self.configuration.clients).map { index in
            let loop = group.next()
            return Task(executorPreference: EventLoopExecutor.for(loop)) {
                await self.client(index, deadline: deadline, group: group)
            }
        }
        for client in clients {
            result.add(await client.value)
        }
        result.elapsed = ContinuousClock.now - start
        return result
    }

    /// One connection: send `pipeline` lines, then one more for each echo that comes back intact.
    private func client(_ index: Int, deadline: NIODeadline?, group: any EventLoopGroup) async -> ClientResult {
        var result = ClientResult()
        let configuration = self.configuration
        let connectStart = NIODeadline.now()
        let conn: TCPConnection
        do {
            var options = ConnectionOptions()
            options.maxLineLength = max(configuration.size, 64)
            conn = try await TCP.connect(
                configuration.address, timeout: configuration.connectTimeout, options: options, group: group)
        } catch {
            result.errors.connect += 1
            return result
        }
        result.connectMicroseconds = UInt64((NIODeadline.now() - connectStart).nanoseconds / 1000)

        let line = ByteBuffer(bytes: configuration.line(for: index))
        let total = deadline == nil ? configuration.messages : Int.max
        let depth = max(1, configuration.pipeline)
        var sentAt = [UInt64](repeating: 0, count: depth)  // a ring of send times
        var sent = 0
        var reported = 0
        do throws(SillyError) {
            while sent < min(depth, total) {
                sentAt[sent % depth] = NIODeadline.now().uptimeNanoseconds
                try await conn.write(line)
                sent += 1
            }
            while result.messages < sent {
                let echo = try await conn.read(count: line.readableBytes, timeout: configuration.readTimeout)
                let now = NIODeadline.now()
                guard echo == line else {
                    result.errors.mismatch += 1
                    break
                }
                result.latency.record((now.uptimeNanoseconds &- sentAt[result.messages % depth]) / 1000)
                result.messages += 1
                result.bytes += echo.readableBytes
                if result.messages - reported >= 64 {
                    self.progress.add(result.messages - reported)
                    reported = result.messages
                }
                let timeIsUp = deadline.map { now >= $0 } ?? false
                if sent < total && !timeIsUp {
                    sentAt[sent % depth] = now.uptimeNanoseconds
                    try await conn.write(line)
                    sent += 1
                }
            }
        } catch {
            switch error {
            case .timedOut: result.errors.timeout += 1
            case .connectionReset: result.errors.reset += 1
            case .endOfStream: result.errors.closed += 1
            default: result.errors.other += 1
            }
        }
        self.progress.add(result.messages - reported)
        await conn.close()
        return result
    }
}

extension Duration {
    var nanoseconds: TimeAmount {
        let (seconds, attoseconds) = self.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
