import NIOCore
import Synchronization

/// The channels of one connect, so that a cancelled connect can close them. Without this the
/// kernel's attempt would hold its socket until it succeeded or timed out.
final class ConnectAttempt: Sendable {
    private let state = Mutex((abandoned: false, channels: [any Channel]()))

    /// Records a channel about to connect. `false` if the connect was abandoned already: the
    /// channel must not go on.
    func register(_ channel: any Channel) -> Bool {
        self.state.withLock { state in
            if state.abandoned { return false }
            state.channels.append(channel)
            return true
        }
    }

    /// Closes every channel registered so far, and makes later ones fail to register.
    func abandon() {
        let channels = self.state.withLock { state in
            state.abandoned = true
            defer { state.channels = [] }
            return state.channels
        }
        for channel in channels { channel.close(promise: nil) }
    }
}
