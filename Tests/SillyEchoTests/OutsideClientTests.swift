import Foundation
import Silly
import SillyTestSupport
import Testing

/// The real programs people point at an echo server. Skipped (with the tool named) when a tool is
/// missing, unless SILLY_REQUIRE_CLIENTS=1, as `.ci/run` sets after installing them.
@Suite("silly-echo with real clients: nc, socat, telnet")
struct OutsideClientTests {
    @Test("nc -N half-closes after its input: every line comes back, the last unterminated one too",
          .enabled(if: OutsideClient.enabled("nc"), "needs nc (apt-get install netcat-openbsd)"))
    func netcatHalfClose() async throws {
        let server = try ServerProcess([])
        let port = String(try await server.address().split(separator: ":").last!)
        let result = try await OutsideClient.run("nc", ["-N", "-w", "60", "127.0.0.1", port], input: "a\nb\nc")
        #expect(result.output == "a\nb\nc")
        #expect(await server.waitForLog("received 5 bytes, sent 5 bytes, messages 3"))
        #expect(await server.stop() == 0)
    }

    @Test("socat echoes a stream of lines in order",
          .enabled(if: OutsideClient.enabled("socat"), "needs socat (apt-get install socat)"))
    func socatLines() async throws {
        let server = try ServerProcess([])
        let address = try await server.address()
        let input = (1...500).map { "line \($0) \(CryptoUtils.randomKey(20))\n" }.joined()
        let result = try await OutsideClient.run("socat", ["-t", "60", "-", "TCP:\(address)"], input: input)
        #expect(result.output == input)
        #expect(await server.stop() == 0)
    }

    @Test("socat in raw mode: binary bytes come back unchanged",
          .enabled(if: OutsideClient.enabled("socat"), "needs socat (apt-get install socat)"))
    func socatRaw() async throws {
        let server = try ServerProcess(["--mode", "raw"])
        let address = try await server.address()
        let input = String(decoding: (0..<4000).map { UInt8(truncatingIfNeeded: $0 % 127 + 1) }, as: UTF8.self)
        let result = try await OutsideClient.run("socat", ["-t", "60", "-", "TCP:\(address)"], input: input)
        #expect(result.output == input)
        #expect(await server.stop() == 0)
    }

    @Test("a telnet session, typed through the real telnet under expect, as the tutorial shows",
          .enabled(if: OutsideClient.enabled("telnet", "expect"), "needs telnet and expect (apt-get install telnet expect)"))
    func telnetSession() async throws {
        let server = try ServerProcess([])
        let port = String(try await server.address().split(separator: ":").last!)
        let result = try await Self.tutorialTelnetSession(port: port)
        #expect(result.status == 0, "expect output: \(result.output)")
        #expect(await server.waitForLog("messages 2; connections: 0"))
        #expect(await server.stop() == 0)
    }

    /// The tutorial's telnet session through the real telnet under expect: connect, type two
    /// lines and see each echoed, quit. Status 0 if all of it was seen.
    static func tutorialTelnetSession(port: String) async throws -> (output: String, status: Int32) {
        let script = Self.expectPrelude + #"""
            spawn telnet 127.0.0.1 \#(port)
            want {Trying 127.0.0.1\.\.\.}
            want {Connected to 127.0.0.1\.}
            want {Escape character is '\^]'\.}
            send "Hello Silly!\r"
            want {Hello Silly!\r\n.*Hello Silly!\r\n}
            send "This is a test\r"
            want {This is a test\r\n.*This is a test\r\n}
            send "\035"
            want {telnet>}
            send "quit\r"
            expect eof
            exit 0
            """#
        return try await OutsideClient.run("expect", ["-c", script + "\n"])
    }

    /// `want PATTERN`: wait for a regular expression, and fail the script (exit 1) if it does not come.
    static let expectPrelude = #"""
        set timeout 60
        proc want {pattern} {
            expect {
                -re $pattern {}
                timeout { puts "\nexpected, not seen: $pattern"; exit 1 }
                eof { puts "\nconnection ended before: $pattern"; exit 1 }
            }
        }

        """#

    @Test("telnet in command mode: banner, help and quit",
          .enabled(if: OutsideClient.enabled("telnet", "expect"), "needs telnet and expect (apt-get install telnet expect)"))
    func telnetCommands() async throws {
        let server = try ServerProcess(["--mode", "command"])
        let port = String(try await server.address().split(separator: ":").last!)
        let script = Self.expectPrelude + #"""
            spawn telnet 127.0.0.1 \#(port)
            want {Welcome to Silly Echo Server!\r\nType 'help' for commands\r\n> }
            send "help\r"
            want {Command list:.*quit - Disconnect\r\n> }
            send "hi\r"
            want {Echo: hi\r\n> }
            send "quit\r"
            want {Goodbye!}
            want {Connection closed by foreign host}
            expect eof
            exit 0
            """#
        let result = try await OutsideClient.run("expect", ["-c", script + "\n"])
        #expect(result.status == 0, "expect output: \(result.output)")
        #expect(await server.waitForLog("(client quit)"))
        #expect(await server.stop() == 0)
    }
}
