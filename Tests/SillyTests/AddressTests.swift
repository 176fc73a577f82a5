import NIOCore
import NIOPosix
@testable import Silly
import SillyTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Addresses: every form, and every way listen and connect fail")
struct AddressTests {
    @Test("each accepted form listens", arguments: ["127.0.0.1:0", ":0", "0.0.0.0:0", "[::1]:0", "localhost:0"])
    func acceptedForms(address: String) async throws {
        let listener: TCPListener
        do throws(SillyError) {
            listener = try await TCP.listen(address, accept: echoLines)
        } catch {
            guard address.hasPrefix("["), case .invalidAddress = error else { throw error }
            return  // a machine without IPv6 loopback
        }
        #expect(listener.port > 0)
        let host = address.hasPrefix("[") ? "[::1]" : (address.hasPrefix("localhost") ? "localhost" : "127.0.0.1")
        let client = try await TCP.connect("\(host):\(listener.port)")
        try await client.write("hi\n")
        #expect(try await client.line() == "hi\n")
        await client.close()
        await listener.close()
    }

    @Test(
        "malformed addresses fail with invalidAddress naming the address",
        arguments: [
            "", "9999", "127.0.0.1", "127.0.0.1:", "127.0.0.1:port", "127.0.0.1:65536", "127.0.0.1:-1",
            "::1:9999", "[::1]9999", "[::1", "[]:80", "[127.0.0.1]:0", "[localhost]:80", "bad host:80", "127.0.0.1:99999999999999999999",
            "127.0.0.1\u{0}:0",
        ]
    )
    func malformed(address: String) async throws {
        do throws(SillyError) {
            _ = try await TCP.listen(address, accept: echoLines)
            Issue.record("listen accepted \(address)")
        } catch {
            guard case .invalidAddress(let named, let reason) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(named == address)
            #expect(!reason.isEmpty)
            #expect("\(error)".contains("'\(address)'"))
        }
        await #expect(throws: SillyError.self) { try await TCP.connect(address) }
    }

    @Test("a local address a connect cannot bind is named in its error, as listen names it")
    func connectLocalAddress() async throws {
        let listener = try await TCP.listen("127.0.0.1:0", accept: echoLines)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        for (local, expected) in [
            ("192.0.2.1:0", SillyError.invalidAddress("192.0.2.1:0", reason: "no local interface has this address")),
            ("127.0.0.1:\(listener.port)", SillyError.addressInUse("127.0.0.1:\(listener.port)")),
        ] {
            await #expect(throws: expected) {
                try await TCP.connect("127.0.0.1:\(listener.port)", localAddress: local, on: loop).get()
            }
        }
        await listener.close()
    }

    @Test("a host that does not resolve fails with unresolvable, for listen and connect")
    func unresolvable() async throws {
        await #expect(throws: SillyError.unresolvable("no-such-host.invalid:80")) {
            try await TCP.listen("no-such-host.invalid:80", accept: echoLines)
        }
        await #expect(throws: SillyError.unresolvable("no-such-host.invalid:80")) {
            try await TCP.connect("no-such-host.invalid:80")
        }
    }

    @Test("an address no interface has fails, naming it")
    func notLocal() async throws {
        await #expect(throws: SillyError.invalidAddress("192.0.2.1:0", reason: "no local interface has this address")) {
            try await TCP.listen("192.0.2.1:0", accept: echoLines)
        }
    }

    @Test("a port in use fails with addressInUse naming the address")
    func portInUse() async throws {
        let first = try await TCP.listen("127.0.0.1:0", accept: echoLines)
        let address = "127.0.0.1:\(first.port)"
        await #expect(throws: SillyError.addressInUse(address)) { try await TCP.listen(address, accept: echoLines) }
        #expect("\(SillyError.addressInUse(address))".contains(address))
        await first.close()
    }

    @Test("connecting to a closed port fails with connectionRefused")
    func refused() async throws {
        // A socket bound to a port without listening holds it: no other test's listener can take
        // it meanwhile (a closed listener's port can be handed out again at once).
        let holder = RawSocket()
        let port = try #require(holder.bindLoopback())
        let target = "127.0.0.1:\(port)"
        await #expect(throws: SillyError.connectionRefused(target)) { try await TCP.connect(target) }
    }

    @Test("a server that accepts and resets at once: each connect fails as a reset, or its read does; no other error")
    func resetOnAccept() async throws {
        let listening = RawSocket()
        let port = try #require(listening.bindLoopback())
        #expect(listen(listening.descriptor, 64) == 0)
        let rounds = 40
        // Accepts on a thread of its own, and closes each connection with SO_LINGER 0: a reset.
        let resetter = Task {
            await offThePool {
                for _ in 0..<rounds {
                    let accepted = accept(listening.descriptor, nil, nil)
                    guard accepted >= 0 else { return }
                    var option = linger(l_onoff: 1, l_linger: 0)
                    setsockopt(accepted, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
                    close(accepted)
                }
            }
        }
        var outcomes: [String: Int] = [:]
        for _ in 0..<rounds {
            do throws(SillyError) {
                let conn = try await TCP.connect("127.0.0.1:\(port)")
                do throws(SillyError) {
                    _ = try await conn.read(count: 1, timeout: patience)
                    outcomes["read data", default: 0] += 1
                } catch {
                    outcomes["read: \(error)", default: 0] += 1
                }
                await conn.close()
            } catch {
                outcomes["connect: \(error)", default: 0] += 1
            }
        }
        await resetter.value
        let reset = "\(SillyError.connectionReset)"
        #expect(outcomes.keys.allSatisfy { $0 == "read: \(reset)" || $0 == "connect: \(reset)" }, "\(outcomes)")
    }

    /// A listening socket that never accepts, its backlog filled with connections until the
    /// kernel drops further SYNs: the error of the connect that found it full (`nil` if none did).
    private func unansweredListener() async throws -> (socket: RawSocket, port: Int, fillers: [TCPConnection], error: SillyError?) {
        let socket = RawSocket()
        let port = try #require(socket.bindLoopback())
        #expect(listen(socket.descriptor, 0) == 0)
        var fillers: [TCPConnection] = []
        for _ in 0..<8 {
            do throws(SillyError) {
                fillers.append(try await TCP.connect("127.0.0.1:\(port)", timeout: .milliseconds(300)))
            } catch {
                return (socket, port, fillers, error)
            }
        }
        return (socket, port, fillers, nil)
    }

    /// Whether the number of this host's sockets in SYN-SENT to `port` becomes `count` within `patience`.
    private func socketsConnecting(toPort port: Int, become count: Int) async -> Bool {
        await eventually {
            SocketEntry.all().count { $0.remotePort == port && $0.state == .synSent } == count
        }
    }

    @Test("a name with two addresses whose first attempt connects after the second began: the connection is the first's, alive")
    func lateFirstAttemptWins() async throws {
        // Two listeners whose queues are full: their SYNs are dropped, and sent again a second later.
        let late = try await self.unansweredListener()
        let never = try await self.unansweredListener()
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let resolver = FixedResolver(
            [try SocketAddress(ipAddress: "127.0.0.1", port: late.port), try SocketAddress(ipAddress: "127.0.0.1", port: never.port)],
            on: loop)
        let connecting = TCP.connect(
            "two.addresses.test:\(late.port)", timeout: .seconds(60), tls: nil, options: ConnectionOptions(), on: loop,
            attempt: nil, resolver: resolver)
        // SwiftNIO tries the second address 250 ms after the first; only then does the first's
        // queue free up, and the first attempt's SYN, sent again, gets through.
        #expect(await self.socketsConnecting(toPort: never.port, become: 1))
        let queued = await offThePool { late.fillers.map { _ in late.socket.accept() } }
        #expect(queued.allSatisfy { $0 != nil })
        let connection = try await connecting.get()
        #expect(connection.remoteAddress == Endpoint(ip: "127.0.0.1", port: late.port))
        #expect(await connection.isAlive)
        try await connection.write("through the first\n")
        let received = await offThePool { late.socket.accept()?.receive(count: 18) ?? [] }
        #expect(String(decoding: received, as: UTF8.self) == "through the first\n")
        await connection.close()
        for filler in late.fillers + never.fillers { await filler.close() }
        withExtendedLifetime((late.socket, never.socket)) {}
    }

    @Test("a connect the server never answers fails with connectTimeout")
    func connectTimeout() async throws {
        let unanswered = try await self.unansweredListener()
        #expect(unanswered.error == .connectTimeout("127.0.0.1:\(unanswered.port)"))
        for filler in unanswered.fillers { await filler.close() }
        withExtendedLifetime(unanswered.socket) {}
    }

    @Test("cancelling a task waiting in connect ends it with cancelled, not at its timeout, and closes its socket")
    func connectCancelled() async throws {
        let unanswered = try await self.unansweredListener()
        // The backlog is full: this connect would wait out its minute.
        let target = "127.0.0.1:\(unanswered.port)"
        let connecting = Task { () async throws(SillyError) -> TCPConnection in
            try await TCP.connect(target, timeout: .seconds(60))
        }
        // The kernel is trying: a socket in SYN-SENT to the port, as `ss` would show it.
        #expect(await self.socketsConnecting(toPort: unanswered.port, become: 1))
        connecting.cancel()
        await #expect(throws: SillyError.cancelled) { try await connecting.value }
        // And the cancel ended that try, rather than leaving it for the minute.
        #expect(await self.socketsConnecting(toPort: unanswered.port, become: 0))
        for filler in unanswered.fillers { await filler.close() }
        withExtendedLifetime(unanswered.socket) {}
    }

    @Test("connect(group:) from a task on another group's loop: the connection lives on a loop of group")
    func connectOnGivenGroup() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let listener = try await TCP.listen("127.0.0.1:0") { conn in
            _ = try? await conn.read(count: 1)
        }
        let other = EventLoopExecutor.for(MultiThreadedEventLoopGroup.singleton.next())
        let loops = await Task(executorPreference: other) { () -> (Bool, Bool) in
            guard let connection = try? await TCP.connect("127.0.0.1:\(listener.port)", group: group) else { return (false, false) }
            let onGroup = connection.eventLoop === group.next()
            let here = await Task(executorPreference: EventLoopExecutor.for(connection.eventLoop)) { () -> Bool in
                // From a task on the group's own loop, the connection stays on that loop.
                guard let second = try? await TCP.connect("127.0.0.1:\(listener.port)", group: group) else { return false }
                defer { Task { await second.close() } }
                return second.eventLoop === connection.eventLoop
            }.value
            await connection.close()
            return (onGroup, here)
        }.value
        #expect(loops == (true, true))
        await listener.close()
        try await group.shutdownGracefully()
    }
}

/// A host name that resolves to `addresses`, all of them IPv4, in that order.
private struct FixedResolver: Resolver, Sendable {
    let addresses: [SocketAddress]
    let loop: any EventLoop

    init(_ addresses: [SocketAddress], on loop: any EventLoop) {
        self.addresses = addresses
        self.loop = loop
    }

    func initiateAQuery(host: String, port: Int) -> EventLoopFuture<[SocketAddress]> { self.loop.makeSucceededFuture(self.addresses) }
    func initiateAAAAQuery(host: String, port: Int) -> EventLoopFuture<[SocketAddress]> { self.loop.makeSucceededFuture([]) }
    func cancelQueries() {}
}
