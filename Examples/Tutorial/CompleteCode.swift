import Silly

/// The Complete Code: the echo server, and 3 test clients that each send 5 random lines,
/// check every echo, and wait a second between lines.
enum CompleteCode {
    static func run(_ address: String) async throws {
        // Start the echo server
        let listener = try await TCP.listen(address) { conn in
            print("Accept connection", conn.remoteAddress!)
            while true {
                let line: ByteBuffer
                do {
                    line = try await conn.read(until: "\n")  // read one line
                } catch {
                    print("Read error [", conn.remoteAddress!, "] ->", error)
                    break
                }
                do {
                    try await conn.write(line)  // echo it
                } catch {
                    print("Write error [", conn.remoteAddress!, "] ->", error)
                    break
                }
            }
            print("Close connection", conn.remoteAddress!)
            await conn.close()
        }
        let serverAddress = "127.0.0.1:\(listener.port)"

        // Start 3 test clients, and wait for them all
        var clients: [Task<Void, Never>] = []
        for i in 1...3 {
            clients.append(Tasks.fork {
                let conn: TCPConnection
                do {
                    conn = try await TCP.connect(serverAddress)
                } catch {
                    print("Connect failed:", error)
                    return
                }
                print("Client", i, "connected:", conn.remoteAddress!)
                for _ in 1...5 {
                    let msg = CryptoUtils.randomKey(5) + "\n"
                    print("Send [", conn.remoteAddress!, "] ->", msg, terminator: "")
                    do {
                        try await conn.write(msg)
                        let recv = try await conn.readString(until: "\n")
                        print("Receive [", conn.remoteAddress!, "] ->", recv, terminator: "")
                        precondition(recv == msg, "Echo data mismatch!")
                    } catch {
                        print("Send or receive failed [", conn.remoteAddress!, "] ->", error)
                        break
                    }
                    try? await Task.sleep(for: .seconds(1))
                }
                print("Client close connection", conn.remoteAddress!)
                await conn.close()
            })
        }
        for client in clients { await client.value }
        await listener.close()
    }
}
