import Silly

/// Step 1: listen; each connection's handler runs in a task of its own.
enum Step1 {
    static func run(_ address: String) async throws {
        let listener = try await TCP.listen(address) { conn in
            // conn: client connection object
            print("New client connection:", conn.remoteAddress!)
        }
        await listener.waitUntilClosed()
    }
}
