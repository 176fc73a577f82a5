import Foundation
import Silly

/// Every wait in a test is bounded by this, so a bug fails the test instead of hanging it.
/// Generous: all tests run at once on two cores, and a step of one can wait many seconds for
/// the others (no test passes by waiting it out, so only a failure takes this long).
public let patience: Duration = .seconds(60)

/// How long a test waits for a program it started to finish its work: some run for seconds
/// of their own (the tutorial's clients sleep between lines), which a loaded machine stretches.
public let programPatience: Duration = patience * 2

/// `closeLinger` for a test whose own client reads megabytes a server closed after writing:
/// with the suite running at once on two cores, that client can take nothing for longer than
/// the default 5 s, which a close must treat as a peer that stopped reading. Such a test is
/// about every byte arriving, not about that policy (tests with small lingers are).
public let bulkCloseLinger: Duration = patience

/// Polls `condition` until it holds, up to `within`; returns whether it did.
public func eventually(within: Duration = patience, _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + within
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return false
}

extension TCPConnection {
    /// Reads a line as a String, failing the test rather than waiting forever.
    public func line() async throws -> String {
        String(buffer: try await self.read(until: "\n", timeout: patience))
    }

    /// Reads until the peer closes and returns every byte; an error other than the stream's
    /// clean end is thrown (``SillyError/timedOut`` when `timeout` passes with nothing new).
    public func readToEnd(timeout: Duration = patience) async throws(SillyError) -> ByteBuffer {
        var received = ByteBuffer()
        while true {
            do throws(SillyError) {
                var chunk = try await self.readAvailable(timeout: timeout)
                received.writeBuffer(&chunk)
            } catch {
                if error == .endOfStream { return received }
                throw error
            }
        }
    }
}

/// SplitMix64: a seeded generator, so a failing random case replays from the seed in its name.
public struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    public init(seed: UInt64) {
        self.state = seed &+ 0x9E37_79B9_7F4A_7C15
    }

    public mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Runs `body`, which blocks (waits for a process, a socket), on a thread of its own: on the
/// concurrency pool (a thread per core) it would stall every test running meanwhile.
public func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// ``offThePool(_:)`` for a body that cannot fail.
public func offThePool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread { continuation.resume(returning: body()) }
    }
}
