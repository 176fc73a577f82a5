import NIOCore
import Synchronization

/// One connect's race with its task's cancellation, decided once: the connect completes first
/// (its result stands) or the cancel comes first (the connect's sockets are closed, and so is a
/// connection that completes after all). Without it the kernel's attempt would hold its socket
/// until it succeeded or timed out.
final class ConnectAttempt: Sendable {
    private enum State {
        /// Under way, with the channels made so far (several for a name with many addresses).
        case connecting([any Channel])
        case completed
        case abandoned
    }

    private let state = Mutex(State.connecting([]))

    /// Records a channel about to connect. `false` if the connect was abandoned already: the
    /// channel must not go on.
    func register(_ channel: any Channel) -> Bool {
        self.state.withLock { state in
            guard case .connecting(var channels) = state else { return false }
            channels.append(channel)
            state = .connecting(channels)
            return true
        }
    }

    /// The connect ended (either way). `true` if that came first, `false` if it was abandoned.
    func complete() -> Bool {
        self.state.withLock { state in
            guard case .connecting = state else { return false }
            state = .completed
            return true
        }
    }

    /// The task was cancelled. `true` if that came first: the channels registered so far are
    /// closed, and later ones fail to register.
    func abandon() -> Bool {
        let channels: [any Channel]? = self.state.withLock { state in
            guard case .connecting(let channels) = state else { return nil }
            state = .abandoned
            return channels
        }
        guard let channels else { return false }
        for channel in channels { channel.close(promise: nil) }
        return true
    }
}
