import NIOPosix
import Silly
import SillyTestSupport
import Synchronization
import Testing

@Suite("Timers, forks and random keys")
struct TimeAndCryptoTests {
    @Test("a timer fires once, after its delay")
    func timerFires() async throws {
        let fired = Mailbox<ContinuousClock.Instant>()
        let start = ContinuousClock.now
        let timer = Time.after(.milliseconds(30)) { fired.send(.now) }
        let when = await fired.next()
        #expect(when.map { $0 - start >= .milliseconds(30) } == true)
        #expect(timer.hasFired)
        #expect(Time.cancel(timer) == false)
    }

    @Test("a cancelled timer never fires, and cancelling reports it")
    func cancelledTimer() async throws {
        let count = Atomic<Int>(0)
        // All on one loop, whose timers fire in deadline order: once the later witness has fired,
        // every cancelled timer would have. A second is ample time to cancel even on a loaded machine.
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let timers = (0..<50).map { _ in Time.after(.seconds(1), on: loop) { count.add(1, ordering: .relaxed) } }
        for timer in timers { #expect(timer.cancel()) }
        let witness = Mailbox<Void>()
        Time.after(.milliseconds(1100), on: loop) { witness.send(()) }
        _ = await witness.next()
        #expect(count.load(ordering: .relaxed) == 0)
        #expect(timers.allSatisfy { !$0.hasFired })
    }

    @Test("the tutorial's idle-timeout pattern: a timer re-armed on every line closes an idle connection")
    func idleTimeoutPattern() async throws {
        let closedBy = Mailbox<String>()
        try await withServer(accept: { conn in
            var timer = Time.after(.seconds(8)) { await conn.close() }
            while true {
                do {
                    let line = try await conn.read(until: "\n")
                    timer.cancel()
                    timer = Time.after(.seconds(8)) { await conn.close() }
                    try await conn.write(line)
                } catch {
                    closedBy.send("\(error)")
                    return
                }
            }
        }) { address in
            // The client runs on an event loop, not on the concurrency pool (one thread per core),
            // which other tests' CPU-heavy work in a debug build can hold for seconds.
            try await withTaskExecutorPreference(EventLoopExecutor.for(MultiThreadedEventLoopGroup.singleton.next())) {
                let client = try await TCP.connect(address)
                // Lines come far more often than every 8 s (even on a loaded machine): the timer is re-armed.
                for index in 0..<3 {
                    try await client.write("line \(index)\n")
                    #expect(try await client.line() == "line \(index)\n")
                }
                #expect(await closedBy.next() == "active closed")
                await #expect(throws: SillyError.self) { try await client.read(until: "\n", timeout: patience) }
                await client.close()
            }
        }
    }

    @Test("fork runs its body as a task")
    func fork() async throws {
        let ran = Mailbox<Int>()
        Tasks.fork {
            try? await Task.sleep(for: .milliseconds(1))
            ran.send(42)
        }
        #expect(await ran.next() == 42)
    }

    @Test("randomKey has the asked length and only ASCII letters", arguments: [0, 1, 5, 64, 1000])
    func randomKey(length: Int) {
        let key = CryptoUtils.randomKey(length)
        #expect(key.utf8.count == length)
        #expect(key.utf8.allSatisfy { (65...90).contains($0) || (97...122).contains($0) })
    }

    @Test("randomKey differs between calls")
    func randomKeyVaries() {
        let keys = Set((0..<100).map { _ in CryptoUtils.randomKey(16) })
        #expect(keys.count == 100)
    }
}
