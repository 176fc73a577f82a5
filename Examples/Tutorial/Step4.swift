import Silly

/// Step 4: when reading fails (the client left, or the network failed), log it and close.
enum Step4 {
    static func run(_ address: String) async throws {
        let listener = try await TCP.listen(address) { conn in
            let peer = conn.remoteAddress!
            while true {
                let data: ByteBuffer
                do {
                    data = try await conn.read(until: "\n")
                } catch {
                    print("Connection closed:", peer, error)  // "socket closed", "Connection reset by peer", ...
                    break
                }
                do {
                    try await conn.write(data)
                } catch {
                    print("Write failed:", peer, error)
                    break
                }
            }
            await conn.close()
            print("Connection closed:", peer)
        }
        await listener.waitUntilClosed()
    }
}
