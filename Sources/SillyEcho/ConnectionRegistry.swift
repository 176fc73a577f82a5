import Silly
import Synchronization

/// The open connections, so a shutdown can reach them.
final class ConnectionRegistry: Sendable {
    private let connections = Mutex<Set<TCPConnection>>([])

    func insert(_ connection: TCPConnection) {
        _ = self.connections.withLock { $0.insert(connection) }
    }

    func remove(_ connection: TCPConnection) {
        _ = self.connections.withLock { $0.remove(connection) }
    }

    var isEmpty: Bool { self.connections.withLock { $0.isEmpty } }

    var all: [TCPConnection] { self.connections.withLock { Array($0) } }
}
