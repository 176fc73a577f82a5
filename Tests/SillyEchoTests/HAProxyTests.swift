import Foundation
import NIOCore
import NIOPosix
import Silly
import SillyTestSupport
import Testing

/// The example in `Examples/haproxy/haproxy.cfg`, run with free ports in place of its own.
@Suite("Behind a real HAProxy with send-proxy-v2", .enabled(if: OutsideClient.enabled("haproxy"), "haproxy is not installed (apt-get install haproxy, or run .ci/run)"))
struct HAProxyTests {
    static let example = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Examples/haproxy/haproxy.cfg")

    @Test("two silly-echo instances behind HAProxy: lines echo through it, and each logs the client's own address")
    func balanced() async throws {
        let haproxy = try #require(OutsideClient.path("haproxy"), "haproxy is not installed")
        // Debug level: the health checks' lines show (at debug, where they belong).
        let arguments = ["--proxy-protocol", "--proxy-header-timeout", "120s", "--log-level", "debug"]
        let servers = try [ServerProcess(arguments), ServerProcess(arguments)]
        let backends = [try await servers[0].address(), try await servers[1].address()]
        // Not an ephemeral port: one that another test's listen on port 0 cannot take first.
        let frontPort = RawSocket.freePortBelowEphemeralRange()

        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("silly-haproxy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let configuration = try String(contentsOf: Self.example, encoding: .utf8)
            .replacingOccurrences(of: "127.0.0.1:9999", with: "127.0.0.1:\(frontPort)")
            .replacingOccurrences(of: "127.0.0.1:10001", with: backends[0])
            .replacingOccurrences(of: "127.0.0.1:10002", with: backends[1])
        let file = scratch.appendingPathComponent("haproxy.cfg")
        try configuration.write(to: file, atomically: true, encoding: .utf8)
        let balancer = try ServerProcess(["-f", file.path, "-db"], addPort: false, executable: haproxy)

        // Ready once it listens. (Its health checks are no sign: they close with a reset,
        // which may arrive before the server has read their header.)
        let listening = await eventually { EchoServerTests.listeningPort(of: balancer.process.processIdentifier) == frontPort }
        #expect(listening, "haproxy: \(balancer.log) \(balancer.errorLog)")

        // Clients from 127.0.0.5, all open at once: leastconn spreads them over both servers.
        var clients: [TCPConnection] = []
        for index in 0..<4 {
            let client = try await TCP.connect(
                "127.0.0.1:\(frontPort)", localAddress: "127.0.0.5:0", on: MultiThreadedEventLoopGroup.singleton.next()
            ).get()
            try await client.write("hello \(index) through HAProxy\n")
            #expect(try await client.line() == "hello \(index) through HAProxy\n")
            clients.append(client)
        }
        for client in clients {
            let own = try #require(client.localAddress)
            #expect(own.ip == "127.0.0.5")
            let logged = await eventually { servers.contains { $0.log.contains("Accept connection \(own), connections: ") } }
            #expect(logged, "no server logged \(own): \(servers.map(\.log))")
        }
        for server in servers {
            #expect(server.log.contains("Accept connection 127.0.0.5:"), "a server got no client: \(server.log)")
            #expect(!server.log.contains("refused"), "\(server.log)")
            // HAProxy's checks (every 2 s; LOCAL headers, ended with a reset) are served quietly:
            // at debug level, never as a client's accept or an error at info level. (A check
            // reset before the server accepted it has no peer address left: "from ?".)
            #expect(await server.waitForLog("debug silly-echo: [SillyEcho] Health check from "), "\(server.log)")
            let lines = server.log.split(separator: "\n")
            #expect(!lines.contains { $0.contains("Accept connection 127.0.0.1:") }, "\(server.log)")
            #expect(!lines.contains { $0.contains(" info ") && $0.contains("error") }, "\(server.log)")
        }
        for client in clients { await client.close() }
        #expect(await balancer.stop() != nil)
        for server in servers { #expect(await server.stop() == 0) }
    }
}
