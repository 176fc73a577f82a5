import ArgumentParser
import Foundation
import Silly
import SillyBench
import SillyCommandLine

@main
struct SillyBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "silly-bench",
        abstract: "Load-test a line-echo server: the Silly tutorial's stress test, measured properly.",
        usage: "silly-bench [<options>]",
        discussion: """
            Opens --clients connections, each keeping --pipeline lines of --size bytes in flight, \
            checks every echoed byte (each line carries its client's and its sequence number, so a \
            duplicated, stale or unrequested echo is a mismatch, and so are bytes left after a \
            client's last echo), and reports messages per second, MB/s and latency \
            percentiles (HdrHistogram) once every client is done, timed on a monotonic clock. \
            Exits 1 if any connect, echo or byte failed. Ctrl-C (SIGINT) stops early: no more \
            lines are sent, the echoes in flight are awaited and checked, the figures so far are \
            reported, and the exit status is 130 (1 if anything failed); a second Ctrl-C quits at once.
            """
    )

    @Option(help: "The server's address: IP:port, [IPv6]:port or host:port.")
    var addr = "127.0.0.1:9999"

    @Option(parsing: .unconditional, help: "Concurrent connections (at most \(Self.maxClients)).")
    var clients = 100

    @Option(parsing: .unconditional, help: "Messages per client (ignored with --duration).")
    var messages = 100

    @Option(parsing: .unconditional, help: "Run for this long instead (e.g. 10s, 500ms); each client keeps sending until then, then waits for the echoes in flight, so a run can take up to this plus --timeout.")
    var duration: DurationArgument?

    @Option(parsing: .unconditional, help: "Bytes per message, the newline included (13, the size of the tutorial's \"test message\\n\"). Each line carries its client's number and sequence number. At most 64 MiB (\(Self.maxSize)).")
    var size = 13

    @Option(parsing: .unconditional, help: "Messages each connection keeps in flight (at most \(Self.maxPipeline)).")
    var pipeline = 1

    @Option(parsing: .unconditional, help: "Connect timeout (e.g. 5s).")
    var connectTimeout = DurationArgument(.seconds(5))

    @Option(parsing: .unconditional, help: "How long to wait for an echo before counting a timeout (e.g. 10s).")
    var timeout = DurationArgument(.seconds(10))

    @Option(parsing: .unconditional, help: "Event-loop threads driving the clients (at most \(Self.maxThreads)). One leaves the other cores to the server.")
    var threads = 1

    @Flag(help: "Connect over TLS; the server's certificate must verify (system CAs, or --tls-ca).")
    var tls = false

    @Option(help: "With --tls: trust the certificate authorities (or the self-signed certificate) in this PEM file.")
    var tlsCa: String?

    @Flag(help: "With --tls: accept any certificate, a self-signed one included (encrypted, not authenticated).")
    var insecure = false

    @Flag(help: "Print the figures as JSON. Percentiles of nothing measured (no echo completed, no connect succeeded) are null, \"n/a\" in the text.")
    var json = false

    @Flag(inversion: .prefixedNo, help: "Show a live progress line on standard output, or not (default: while it is a terminal, without --json).")
    var progress: Bool?

    /// Upper bounds, so a mistyped number is a usage error rather than a failed allocation
    /// (a client array, a line, a pipeline's timestamps) or a failed thread creation.
    static let maxClients = 1_000_000
    static let maxSize = 64 << 20
    static let maxPipeline = 65536
    static let maxThreads = 256
    /// The bytes all clients keep in flight at once (`--clients × --size × --pipeline`): each is
    /// held in memory, in a send queue or a receive buffer, so past this a run would fail for
    /// want of memory rather than measure anything.
    static let maxInFlight = 4 << 30

    func validate() throws {
        do {
            try TCP.checkConnectAddress(self.addr)
        } catch {
            throw ValidationError("--addr: \(error)")
        }
        guard self.clients > 0 else { throw ValidationError("--clients must be positive") }
        guard self.clients <= Self.maxClients else { throw ValidationError("--clients must be at most \(Self.maxClients)") }
        if let duration = self.duration {
            guard duration.duration > .zero else { throw ValidationError("--duration must be more than 0") }
        } else {
            guard self.messages > 0 else { throw ValidationError("--messages must be positive") }
        }
        guard self.size >= 2 else { throw ValidationError("--size must be at least 2 (a byte and the newline)") }
        guard self.size <= Self.maxSize else { throw ValidationError("--size must be at most \(Self.maxSize) (64 MiB)") }
        guard self.pipeline > 0 else { throw ValidationError("--pipeline must be positive") }
        guard self.pipeline <= Self.maxPipeline else { throw ValidationError("--pipeline must be at most \(Self.maxPipeline)") }
        // (Each factor is bounded above, so the product cannot overflow.)
        let inFlight = self.clients * self.size * self.pipeline
        guard inFlight <= Self.maxInFlight else {
            throw ValidationError(
                "--clients × --size × --pipeline is \(inFlight >> 20) MiB in flight: at most \(Self.maxInFlight >> 20) MiB (each byte in flight is held in memory)")
        }
        guard self.threads > 0 else { throw ValidationError("--threads must be positive") }
        guard self.threads <= Self.maxThreads else { throw ValidationError("--threads must be at most \(Self.maxThreads)") }
        guard self.connectTimeout.duration > .zero else { throw ValidationError("--connect-timeout must be more than 0") }
        guard self.timeout.duration > .zero else { throw ValidationError("--timeout must be more than 0") }
        if !self.tls, self.tlsCa != nil || self.insecure {
            throw ValidationError("--tls-ca and --insecure go with --tls")
        }
        if self.progress == true && self.json {
            throw ValidationError("--progress and --json both print on standard output: the progress line would break the JSON")
        }
    }

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        // Each client is a descriptor: thousands of them need more than the usual soft limit.
        let files = FileLimit.raiseToHardLimit()
        if let problem = FileLimit.tooManyEventLoops(self.threads, openFiles: files.soft) {
            FileHandle.standardError.write(Data("silly-bench: open-file limit too low (ulimit -n): \(problem)\n".utf8))
            throw ExitCode.failure
        }
        var configuration = LoadConfiguration()
        configuration.address = self.addr
        configuration.clients = self.clients
        configuration.messages = self.messages
        configuration.duration = self.duration?.duration
        configuration.size = self.size
        configuration.pipeline = self.pipeline
        configuration.connectTimeout = self.connectTimeout.duration
        configuration.readTimeout = self.timeout.duration
        configuration.threads = self.threads
        if self.tls {
            do {
                configuration.tls = try TLSOptions.client(trustedCertificateFile: self.tlsCa, verifyCertificate: !self.insecure)
            } catch {
                FileHandle.standardError.write(Data("silly-bench: \(error)\n".utf8))
                throw ExitCode.failure
            }
        }

        let generator = LoadGenerator(configuration: configuration)
        let progressLine = ProgressLine()
        let interrupt = Self.stopOnFirstInterrupt(generator, progressLine: progressLine)
        let showsProgress = self.progress ?? (isatty(STDOUT_FILENO) == 1 && !self.json)
        let progress = showsProgress ? Self.showProgress(of: generator, on: progressLine) : nil
        let result = await generator.run()
        interrupt.cancel()
        progress?.cancel()
        _ = await progress?.value
        progressLine.erase()
        print(self.json ? try LoadReport.json(result) : LoadReport.text(result))
        if result.errors.total > 0 {
            throw ExitCode.failure
        }
        if result.interrupted {
            throw ExitCode(128 + SIGINT)
        }
    }

    /// The first SIGINT stops the run gently (the report still comes); SIGINT's default action is
    /// then restored, so a second one ends the process at once. (Not ignored meanwhile: one that
    /// comes before libdispatch has installed its handler, in the first milliseconds, ends the
    /// process as usual rather than being lost.) Its message goes through `progressLine`, so that
    /// it does not run on from the progress line.
    static func stopOnFirstInterrupt(_ generator: LoadGenerator, progressLine: ProgressLine) -> any DispatchSourceSignal {
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler {
            source.cancel()
            signal(SIGINT, SIG_DFL)
            progressLine.say("silly-bench: stopping: waiting for the echoes in flight (Ctrl-C again to quit now)")
            generator.stop()
        }
        source.resume()
        return source
    }

    /// A live `done/total, rate` line, redrawn twice a second (by default while stdout is a terminal).
    static func showProgress(of generator: LoadGenerator, on progressLine: ProgressLine) -> Task<Void, Never> {
        let c = generator.configuration
        let product = c.clients.multipliedReportingOverflow(by: c.messages)
        let total = c.duration == nil && !product.overflow ? product.partialValue : nil
        return Task {
            var last = 0
            var lastTime = ContinuousClock.now
            while (try? await Task.sleep(for: .milliseconds(500))) != nil {
                let done = generator.progress.messages
                let now = ContinuousClock.now
                let interval = now - lastTime
                let seconds = interval / .seconds(1)
                let rate = seconds > 0 ? Double(done - last) / seconds : 0
                let of = total.map { "/\($0)" } ?? ""
                progressLine.draw(String(format: "%d%@ messages, %.0f msg/s", done, of, rate))
                last = done
                lastTime = now
            }
        }
    }
}
