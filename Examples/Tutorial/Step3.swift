import Silly

/// Step 3: the three ways to read — a line, n bytes, whatever is buffered.
enum Step3 {
    static func run(_ address: String) async throws {
        let listener = try await TCP.listen(address) { conn in
            let line = try await conn.read(until: "\n")  // one line, "\n" included
            print("line:", String(buffer: line).debugDescription)
            let four = try await conn.read(count: 4)  // exactly 4 bytes
            print("4 bytes:", String(buffer: four).debugDescription)
            let rest = try await conn.read(count: await conn.unreadBytes)  // all available data
            print("buffered:", String(buffer: rest).debugDescription)
            try await conn.write(contentsOf: [line, four, rest])
        }
        await listener.waitUntilClosed()
    }
}
