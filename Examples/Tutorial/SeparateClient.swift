import Silly

/// The separate client: connect, send one line, print its echo.
enum SeparateClient {
    static func run(_ address: String) async throws {
        let conn: TCPConnection
        do {
            conn = try await TCP.connect(address)
        } catch {
            print("Connect failed:", error)
            return
        }
        print("Connected to server:", conn.remoteAddress!)
        try await conn.write("Hello from client\n")
        do {
            let msg = try await conn.readString(until: "\n")
            print("Received echo:", msg, terminator: "")
        } catch {
            print("Receive failed:", error)
        }
        await conn.close()
    }
}
