import ArgumentParser
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import UnixSignals
import Silly
import SillyCommandLine
import SillyEcho
import SillyMetrics

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@main
struct SillyEchoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "silly-echo",
        abstract: "The Silly tutorial's TCP echo server, with its extension exercises built in.",
        usage: """
            silly-echo [<options>]
            silly-echo client [<address> | --addr <address>] [--message <message>]
            """,
        discussion: """
            Echoes every line a client sends (telnet 127.0.0.1 9999). Logs each connection's \
            accept and close with the number of open connections, and its traffic when it closes. \
            SIGINT, SIGTERM or SIGHUP stops accepting, lets open connections finish what they have \
            received (--shutdown-grace), logs the totals and exits 0; a second signal closes them \
            at once.
            """,
        subcommands: [ClientCommand.self]
    )

    @OptionGroup var server: ServerAddress

    @Option(help: "line: echo each line; command: the tutorial's help/time/quit protocol; raw: echo bytes as they arrive (RFC 862).")
    var mode: EchoMode = .line

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    @Option(parsing: .unconditional, help: "Close a connection with no complete line (raw mode: no byte) for this long, or whose echoes do not drain for this long (e.g. 300s, 5m, 500ms); 0 disables.")
    var idleTimeout: DurationArgument = DurationArgument(.seconds(300))

    @Option(parsing: .unconditional, help: "Longest line in bytes (line and command modes: raw mode has no lines); a longer one is logged and its connection closed.")
    var maxLine = 64 * 1024

    @Option(parsing: .unconditional, help: "Most open connections; a client beyond them is told the server is full and closed. (default: \(EchoConfiguration().maxConnections), or less if the open-file limit allows fewer)")
    var maxConnections: Int?

    @Option(parsing: .unconditional, help: "Log the server's totals this often (e.g. 10s); 0: only at shutdown.")
    var statsInterval: DurationArgument = DurationArgument(.zero)

    @Option(parsing: .unconditional, help: "On SIGINT/SIGTERM/SIGHUP, how long open connections may take to finish.")
    var shutdownGrace: DurationArgument = DurationArgument(.seconds(5))

    @Option(parsing: .unconditional, help: "How long a closing connection waits for a client that takes none of its last answers (or, once they are sent, that is still sending) before it is cut off.")
    var closeLinger: DurationArgument = DurationArgument(.seconds(5))

    @Option(parsing: .unconditional, help: "Length of the kernel's queue of connections not yet accepted.")
    var backlog = 4096

    @Option(parsing: .unconditional, help: "Event-loop threads serving the connections. (default: one per core)")
    var threads: Int?

    @Flag(help: "Share the port with other silly-echo processes started with --reuse-port: the kernel spreads connections among them.")
    var reusePort = false

    @Flag(help: "Expect a PROXY protocol header (v1 or v2, e.g. HAProxy's send-proxy-v2) on every connection; logs and statistics show the original client. Only for a port that only the proxy can reach.")
    var proxyProtocol = false

    @Option(parsing: .unconditional, help: "With --proxy-protocol: close a connection whose header is not complete after this long. (default: 10s)")
    var proxyHeaderTimeout: DurationArgument?

    @Option(help: "Serve TLS with this certificate chain (PEM, leaf first); needs --tls-key.")
    var tlsCert: String?

    @Option(help: "The private key (PEM) of --tls-cert.")
    var tlsKey: String?

    @Option(help: "Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464). (default: off)")
    var metricsAddr: String?

    @Flag(help: "Run the tutorial's test clients against this server, in this process, then exit: 0 if every echo matched. (Plain lines over plain TCP: line or raw mode, no TLS, no PROXY protocol.)")
    var selfTest = false

    @Option(parsing: .unconditional, help: "With --self-test: how many clients. (default: 3)")
    var clients: Int?

    @Option(parsing: .unconditional, help: "With --self-test: messages per client. (default: 5)")
    var messages: Int?

    @Option(parsing: .unconditional, help: "With --self-test: pause between a client's messages. (default: 1s)")
    var interval: DurationArgument?

    private var headerTimeout: Duration { self.proxyHeaderTimeout?.duration ?? .seconds(10) }

    func validate() throws {
        guard self.maxLine > 0 else { throw ValidationError("--max-line must be positive") }
        if let maxConnections = self.maxConnections, maxConnections < 1 { throw ValidationError("--max-connections must be positive") }
        guard self.backlog > 0 else { throw ValidationError("--backlog must be positive") }
        if let threads = self.threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        // (Port 0 twice is two ports the kernel picks.)
        if let metricsAddr = self.metricsAddr, metricsAddr == self.server.address, !metricsAddr.hasSuffix(":0") {
            throw ValidationError("--metrics-addr \(metricsAddr) is the echo server's own address (--addr): give the metrics another port")
        }
        if self.proxyHeaderTimeout != nil && !self.proxyProtocol {
            throw ValidationError("--proxy-header-timeout goes with --proxy-protocol")
        }
        guard self.headerTimeout > .zero else {
            throw ValidationError("--proxy-header-timeout must be positive (the PROXY protocol requires a header on every connection)")
        }
        guard self.closeLinger.duration > .zero else {
            throw ValidationError("--close-linger must be positive")
        }
        guard (self.tlsCert == nil) == (self.tlsKey == nil) else {
            throw ValidationError("--tls-cert and --tls-key go together")
        }
        if !self.selfTest && (self.clients != nil || self.messages != nil || self.interval != nil) {
            throw ValidationError("--clients, --messages and --interval go with --self-test")
        }
        guard self.clients ?? 1 > 0, self.messages ?? 1 > 0 else { throw ValidationError("--clients and --messages must be positive") }
        if self.selfTest {
            // The tutorial's test clients speak plain lines over plain TCP (raw mode echoes them too).
            guard self.mode != .command else {
                throw ValidationError("--self-test sends plain lines: it cannot test --mode command (use telnet, or silly-echo client)")
            }
            guard self.tlsCert == nil, !self.proxyProtocol else {
                throw ValidationError("--self-test connects over plain TCP: it cannot be combined with --tls-cert or --proxy-protocol")
            }
        }
    }

    /// `--max-connections`, or by default the configuration's (10,000) lowered to what the open-file limit allows with
    /// some descriptors kept for the server itself (and for connections still closing, which
    /// hold theirs for up to a second while the peer ends its side), and for the metrics
    /// endpoint's connections if it has one: past that, accepting fails outright and a
    /// client waits in the kernel's queue instead of being told the server is full. (A limit
    /// given explicitly is kept, with a warning.)
    static func connectionLimit(_ requested: Int?, openFiles: UInt64, threads: Int, metricsConnections: Int?, logger: Logger) -> Int {
        let limit = requested ?? EchoConfiguration().maxConnections
        let metrics = metricsConnections.map { UInt64(PrometheusEndpoint.descriptors(maxConnections: $0)) + FileLimit.perEventLoop * UInt64(System.coreCount) } ?? 0
        let reserved = min(FileLimit.keptForTheProcess + FileLimit.perEventLoop * UInt64(max(threads, 1)), openFiles / 2) + metrics
        let allowed = max(1, Int(clamping: openFiles - min(reserved, openFiles)))
        guard openFiles > 0, limit > allowed else { return limit }
        let keptFor = metricsConnections == nil ? "the server" : "the server and its metrics endpoint"
        let files = "the open-file limit allows (\(openFiles), \(reserved) of them kept for \(keptFor))"
        if requested != nil {
            logger.warning("--max-connections \(limit) is more than \(files): past \(allowed), clients wait unaccepted")
            return limit
        }
        logger.warning("\(limit) connections (the default --max-connections) are more than \(files): using \(allowed)")
        return allowed
    }

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        let level = self.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardOutput(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "silly-echo")
        let files = FileLimit.raiseToHardLimit()
        logger.info("Open-file limit: \(files.soft) (hard limit \(files.hard))")
        if let threads = self.threads, let problem = FileLimit.tooManyEventLoops(threads, openFiles: files.soft) {
            printError("silly-echo: --threads: \(problem)")
            throw ExitCode.failure
        }

        var configuration = EchoConfiguration()
        configuration.address = self.server.address
        configuration.mode = self.mode
        configuration.idleTimeout = self.idleTimeout.duration == .zero ? nil : self.idleTimeout.duration
        configuration.maxLineLength = self.maxLine
        // The metrics endpoint's share of the descriptors: 64 connections, fewer under a low limit.
        let metricsConnections = self.metricsAddr.map { _ in Int(clamping: min(64, max(1, files.soft / 16))) }
        configuration.maxConnections = Self.connectionLimit(
            self.maxConnections, openFiles: files.soft, threads: self.threads ?? System.coreCount,
            metricsConnections: metricsConnections, logger: logger)
        configuration.statsInterval = self.statsInterval.duration == .zero ? nil : self.statsInterval.duration
        configuration.shutdownGrace = self.shutdownGrace.duration
        configuration.closeLinger = self.closeLinger.duration
        configuration.backlog = self.backlog
        configuration.threads = self.threads
        configuration.reusePort = self.reusePort
        configuration.proxyProtocol = self.proxyProtocol
        configuration.proxyHeaderTimeout = self.headerTimeout
        if let certificate = self.tlsCert, let key = self.tlsKey {
            do {
                configuration.tls = try TLSOptions.server(certificateFile: certificate, privateKeyFile: key)
            } catch {
                printError("silly-echo: \(error)")
                throw ExitCode.failure
            }
        }

        var services: [any Service] = []
        let server: EchoServer
        if let metricsAddr = self.metricsAddr {
            do {
                _ = try TCP.listenAddress(metricsAddr)  // a malformed address stops us before the echo server listens
            } catch {
                printError("silly-echo: --metrics-addr: \(error)")
                throw ExitCode.failure
            }
            let registry = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: registry)
            factory.durationHistogramBuckets[EchoServer.connectionDurationMetric] = [
                .milliseconds(10), .milliseconds(100), .seconds(1), .seconds(10), .seconds(60),
                .seconds(300), .seconds(1800), .seconds(3600), .seconds(86400),
            ]
            MetricsSystem.bootstrap(factory)
            server = EchoServer(configuration: configuration, logger: logger, metricsFactory: factory)
            let endpoint = PrometheusEndpoint(
                address: metricsAddr, registry: registry, maxConnections: metricsConnections ?? 64, logger: logger
            ) {
                server.publishMetrics()
            }
            // A group shuts its services down in reverse order, each once the one after it has
            // ended: the endpoint stays up while the server drains, so the drain can be watched.
            services = [endpoint, server]
        } else {
            server = EchoServer(configuration: configuration, logger: logger)
            services = [server]
        }

        // A hangup (its terminal closed) stops it too, unless it was started to outlive one (nohup).
        let stopSignals: [UnixSignal] = [.sigterm, .sigint] + (Self.hangupIgnored ? [] : [.sighup])
        var groupConfiguration = ServiceGroupConfiguration(
            services: services,
            // The self-test stops on the first signal; the server listens for more (`run`).
            gracefulShutdownSignals: self.selfTest ? stopSignals : [],
            logger: logger
        )
        groupConfiguration.maximumGracefulShutdownDuration = configuration.shutdownGrace + .seconds(5)
        let group = ServiceGroup(configuration: groupConfiguration)

        do {
            if self.selfTest {
                try await self.runSelfTest(group: group, server: server)
            } else {
                try await Self.run(group, stoppingOn: stopSignals, logger: logger)
            }
        } catch let error as SillyError {
            printError("silly-echo: cannot listen: \(error)")
            throw ExitCode.failure
        } catch let error as PrometheusEndpoint.ListenError {
            printError("silly-echo: --metrics-addr: cannot listen: \(error.reason)")
            throw ExitCode.failure
        }
    }

    /// Whether SIGHUP was ignored when the process started, as `nohup` leaves it.
    static var hangupIgnored: Bool {
        var current = sigaction()
        sigaction(SIGHUP, nil, &current)
        return unsafeBitCast(current.__sigaction_handler.sa_handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self)
    }

    /// Runs `group` until one of `signals` stops it: the first starts its graceful shutdown; a
    /// second SIGINT or SIGTERM cuts the grace period short (as a second Ctrl-C does: the group is
    /// cancelled, so the server closes the connections still open at once, logs its totals and
    /// ends); a third exits there and then. A repeated SIGHUP only stops (a closing terminal can
    /// send two).
    ///
    /// One listener for them all, trapping before the group runs: no signal falls between two
    /// listeners, and the group has none of its own (`gracefulShutdownSignals: []`).
    static func run(_ group: ServiceGroup, stoppingOn signals: [UnixSignal], logger: Logger) async throws {
        let caught = await UnixSignalsSequence(trapping: signals)
        let running = Task {
            do {
                try await group.run()
            } catch is CancellationError {}
        }
        let listener = Task {
            var stops = 0
            for await signal in caught {
                if stops == 0 {
                    logger.info("\(signal): stopping gracefully (a second SIGINT or SIGTERM stops at once)")
                    await group.triggerGracefulShutdown()
                    stops = 1
                } else if signal != .sighup {
                    stops += 1
                    if stops == 2 {
                        logger.notice("Second signal (\(signal)): closing the open connections now")
                        running.cancel()
                    } else {
                        logger.warning("Third signal (\(signal)): exiting now")
                        Glibc.exit(128 + signal.rawValue)
                    }
                }
            }
        }
        defer { listener.cancel() }
        try await running.value
    }

    private func runSelfTest(group: ServiceGroup, server: EchoServer) async throws {
        let test = SelfTest(clients: self.clients ?? 3, messages: self.messages ?? 5, interval: self.interval?.duration ?? .seconds(1))
        let passed = try await withThrowingTaskGroup(of: Bool.self) { tasks in
            tasks.addTask {
                try await group.run()
                return true
            }
            guard let endpoint = await server.waitUntilListening() else {
                return try await tasks.next() ?? false  // rethrows the listen error
            }
            let passed = await test.run(against: endpoint.description) { print($0) }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return passed
        }
        print(passed ? "Self-test passed: every echo matched" : "Self-test FAILED")
        if !passed { throw ExitCode.failure }
    }
}

/// `--addr`: where the server listens, or where the client connects.
struct ServerAddress: ParsableArguments {
    static let standard = "127.0.0.1:9999"

    @Option(help: "The server's address, where silly-echo listens and `silly-echo client` connects: IP:port, :port (all IPv4 interfaces; [::]:port for IPv6 too), [IPv6]:port or host:port. (default: \(ServerAddress.standard))")
    var addr: String?

    var address: String { self.addr ?? Self.standard }
}

/// The tutorial's separate client.
struct ClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "Connect to an echo server, send one line, print its echo (the tutorial's separate client)."
    )

    @Argument(help: "The server's address (default: 127.0.0.1:9999).")
    var address: String?

    /// `--addr` after `client` is claimed by the parent command (swift-argument-parser's design),
    /// so the client reads it through the option group they share.
    @OptionGroup var server: ServerAddress

    @Option(help: "The line to send (one line: a newline is added).")
    var message = "Hello from client"

    func validate() throws {
        if let address, let addressOption = self.server.addr, address != addressOption {
            throw ValidationError("two addresses given: \(address) and --addr \(addressOption)")
        }
        // Two lines would get two echoes, and only the first is read.
        if self.message.utf8.contains(UInt8(ascii: "\n")) {
            throw ValidationError("--message must be one line: it contains a newline")
        }
    }

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        do {
            _ = try await EchoClient.run(address: self.address ?? self.server.address, message: self.message) { print($0) }
        } catch .connect(let error) {
            printError("silly-echo client: \(error)")
            throw ExitCode.failure
        } catch .exchange {
            throw ExitCode.failure  // said already, on the tutorial's "Receive failed" line
        } catch .mismatch(let reply) {
            printError("silly-echo client: the reply is not the line sent: \(QuotedText.quoted(reply.readableBytesView)) (a --mode command server greets first)")
            throw ExitCode.failure
        }
    }
}

func printError(_ message: String) {
    var standardError = StandardError()
    print(message, to: &standardError)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        var bytes = Array(string.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}

extension EchoMode: ExpressibleByArgument {}

extension Logger.Level: @retroactive ExpressibleByArgument {}
