import Silly
import Synchronization

/// The open connections, so a shutdown can reach them.
final class ConnectionRegistry: Sendable {
    private let connections = Mutex<[ObjectIdentifier: TCPConnection]>([:])

    func insert(_ connection: TCPConnection) {
        self.connections.withLock { $0[ObjectIdentifier(connection)] = connection }
    }

    func remove(_ connection: TCPConnection) {
        _ = self.connections.withLock { $0.removeValue(forKey: ObjectIdentifier(connection)) }
    }

    var isEmpty: Bool { self.connections.withLock { $0.isEmpty } }

    var all: [TCPConnection] { self.connections.withLock { Array($0.values) } }
}
