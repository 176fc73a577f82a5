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
        // All on one loop, whose timers fire in deadline order, and all set in one turn of it,
        // so none can fire before it is cancelled: once the later witness has fired, every
        // cancelled timer would have.
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let witness = Mailbox<Void>()
        let (timers, cancelled) = try await loop.submit { () -> ([Time.Timer], [Bool]) in
            let timers = (0..<50).map { _ in Time.after(.milliseconds(10), on: loop) { count.add(1, ordering: .relaxed) } }
            Time.after(.milliseconds(50), on: loop) { witness.send(()) }
            return (timers, timers.map { $0.cancel() })
        }.get()
        #expect(cancelled.allSatisfy { $0 })
        _ = await witness.next()
        #expect(count.load(ordering: .relaxed) == 0)
        #expect(timers.allSatisfy { !$0.hasFired })
    }

    @Test("the tutorial's idle-timeout pattern: a timer re-armed on every line closes an idle connection")
    func idleTimeoutPattern() async throws {
        let closedBy = Mailbox<String>()
        let idleMilliseconds = Atomic<Int>(0)
        // Server and client on a loop of their own: the shared loops run other tests' handlers.
        try await withServer(group: quietLoop, accept: { conn in
            let idle = Duration.milliseconds(idleMilliseconds.load(ordering: .relaxed))
            var timer = Time.after(idle) { await conn.close() }
            while true {
                do {
                    let line = try await conn.read(until: "\n")
                    timer.cancel()
                    timer = Time.after(idle) { await conn.close() }
                    try await conn.write(line)
                } catch {
                    closedBy.send("\(error)")
                    return
                }
            }
        }) { address in
            // The client runs on that loop too, not on the concurrency pool (one thread per core),
            // which other tests' CPU-heavy work in a debug build can hold for seconds.
            try await withTaskExecutorPreference(EventLoopExecutor.for(quietLoop.next())) {
                // Three lines 0.6 of the timeout apart: only a timer re-armed on each line lets
                // all three through. A machine stalled past the timeout closes the connection
                // early too; then the test tries again with twice the time.
                for idle in [1000, 2000, 4000, 8000] {
                    idleMilliseconds.store(idle, ordering: .relaxed)
                    let client = try await TCP.connect(address, group: quietLoop)
                    var echoed = 0
                    for index in 0..<3 {
                        try await Task.sleep(for: .milliseconds(idle * 6 / 10))
                        guard (try? await client.write("line \(index)\n")) != nil,
                            let reply = try? await client.line()
                        else { break }
                        #expect(reply == "line \(index)\n")
                        echoed += 1
                    }
                    #expect(await closedBy.next() == "active closed")
                    if echoed < 3 {
                        await client.close()
                        continue
                    }
                    await #expect(throws: SillyError.endOfStream) { try await client.read(until: "\n", timeout: patience) }
                    await client.close()
                    return
                }
                Issue.record("every try was closed before its third line: the timer is not re-armed")
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
