import Silly

/// Every wait in a test is bounded by this, so a bug fails the test instead of hanging it.
public let patience: Duration = .seconds(20)

/// Polls `condition` until it holds, up to `patience`; returns whether it did.
public func eventually(_ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + patience
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
}
