import NIOCore
import Silly

/// The tutorial's built-in test clients: each connects, sends `messages` random 5-letter lines
/// `interval` apart, and checks that every echo matches what it sent.
public struct SelfTest: Sendable {
    /// How many clients run at once.
    public var clients = 3
    /// Lines each client sends.
    public var messages = 5
    /// Pause between a client's lines.
    public var interval: Duration = .seconds(1)

    /// The tutorial's defaults: 3 clients × 5 lines, a second apart.
    public init(clients: Int = 3, messages: Int = 5, interval: Duration = .seconds(1)) {
        self.clients = clients
        self.messages = messages
        self.interval = interval
    }

    /// Runs the clients against `address`, printing what they send and receive through `say`.
    /// Returns whether every client connected and every echo matched.
    public func run(against address: String, say: @escaping @Sendable (String) -> Void) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            for client in 1...max(1, self.clients) {
                group.addTask { await self.client(client, address: address, say: say) }
            }
            var passed = true
            for await ok in group { passed = passed && ok }
            return passed
        }
    }

    private func client(_ number: Int, address: String, say: @Sendable (String) -> Void) async -> Bool {
        let conn: TCPConnection
        do {
            conn = try await TCP.connect(address)
        } catch {
            say("Connect failed: \(error)")
            return false
        }
        // The client's own address names it, as the server's accept line does.
        let peer = conn.localAddress?.description ?? "client \(number)"
        say("Client \(number) connected: \(peer) -> \(conn.remoteAddress?.description ?? address)")
        defer { say("Client close connection \(peer)") }
        for message in 1...max(1, self.messages) {
            let line = CryptoUtils.randomKey(5) + "\n"
            say("Send [\(peer)] -> \(line.dropLast())")
            do {
                try await conn.write(line)
                // The bytes kept: a mismatch quotes those that are not UTF-8 as they came.
                let echo = try await conn.read(until: "\n", timeout: .seconds(10))
                // Bytes, not Strings: String equality is Unicode's (an NFD echo of an NFC line, or
                // U+FFFD for a byte that is not UTF-8, would pass).
                let matches = echo.readableBytesView.elementsEqual(line.utf8)
                // Printed as it came only when it is the line sent: other bytes are quoted, so
                // that a server's escape sequences cannot act on the terminal.
                say("Receive [\(peer)] -> \(matches ? String(line.dropLast()) : QuotedText.quoted(echo.readableBytesView))")
                guard matches else {
                    say("Echo data mismatch! [\(peer)] sent \(QuotedText.quoted(line.utf8)), got \(QuotedText.quoted(echo.readableBytesView))")
                    await conn.close()
                    return false
                }
            } catch {
                say("Receive failed [\(peer)] -> \(error)")
                await conn.close()
                return false
            }
            if message < self.messages {
                try? await Task.sleep(for: self.interval)
            }
        }
        await conn.close()
        return true
    }
}

/// The tutorial's separate client: connect, send one line, print its echo.
public enum EchoClient {
    /// How the client failed: it could not connect; connected, the exchange failed (what it
    /// already said as "Receive failed: …", as the tutorial's client prints it); or the reply
    /// was another line.
    public enum Failure: Error {
        case connect(SillyError)
        case exchange(SillyError)
        /// The line that came back, not the one sent (without its newline): its bytes, so that
        /// a message can quote those that are not UTF-8.
        case mismatch(ByteBuffer)
    }

    /// Sends `message` and a newline to `address`; returns the echoed line (without its newline),
    /// which must be `message`.
    public static func run(address: String, message: String, say: @Sendable (String) -> Void) async throws(Failure) -> String {
        let conn: TCPConnection
        do {
            conn = try await TCP.connect(address)
        } catch {
            throw .connect(error)
        }
        say("Connected to server: \(conn.remoteAddress?.description ?? address)")
        var echo: ByteBuffer
        do {
            try await conn.write(message + "\n")
            echo = try await conn.read(until: "\n", timeout: .seconds(10))
        } catch {
            say("Receive failed: \(error)")
            await conn.close()
            throw .exchange(error)
        }
        if echo.readableBytesView.last == UInt8(ascii: "\n") { echo.moveWriterIndex(to: echo.writerIndex - 1) }
        await conn.close()
        // Bytes, not Strings: String equality is Unicode's. Another reply is quoted, so that a
        // server's escape sequences cannot act on the terminal.
        guard echo.readableBytesView.elementsEqual(message.utf8) else {
            say("Received echo: \(QuotedText.quoted(echo.readableBytesView))")
            throw .mismatch(echo)
        }
        say("Received echo: \(message)")
        return message
    }
}
