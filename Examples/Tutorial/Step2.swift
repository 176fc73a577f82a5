import Silly

/// Step 2: loop reading a line and echoing it; stop at the first error.
enum Step2 {
    static func run(_ address: String) async throws {
        let listener = try await TCP.listen(address) { conn in
            print("New client connection:", conn.remoteAddress!)
            while true {
                do {
                    let data = try await conn.read(until: "\n")  // read one line
                    try await conn.write(data)  // echo it
                } catch {
                    print("Read or write error:", error)
                    break
                }
            }
            await conn.close()
        }
        await listener.waitUntilClosed()
    }
}
