// The tutorial's programs, one per step and exercise, written with the Silly API.
// usage: silly-examples <example> [address]   (address defaults to 127.0.0.1:9999, as in the tutorial)
import Silly

#if canImport(Glibc)
@preconcurrency import Glibc  // for `stdout`, a C global
#endif

let examples: [(name: String, summary: String, run: @Sendable (String) async throws -> Void)] = [
    ("step1", "Step 1: create a listening server", Step1.run),
    ("step2", "Step 2: handle client connections (the echo loop)", Step2.run),
    ("step3", "Step 3: the three read forms", Step3.run),
    ("step4", "Step 4: graceful shutdown of a connection", Step4.run),
    ("complete", "Complete Code: the echo server and its 3 test clients", CompleteCode.run),
    ("client", "The separate client", SeparateClient.run),
    ("counter", "Exercise 1: connection counter", ConnectionCounter.run),
    ("timeout", "Exercise 2: idle timeout with time.after", IdleTimeout.run),
    ("stats", "Exercise 3: per-connection statistics", Statistics.run),
    ("protocol", "Exercise 4: the help/time/quit protocol", CommandProtocolExample.run),
    ("stress", "Exercise 5: the stress-test client", StressTest.run),
]

signal(SIGPIPE, SIG_IGN)
// Each line reaches a log file or pipe as it is printed (not at exit, which a signal would skip).
setvbuf(stdout, nil, _IOLBF, 0)
let arguments = CommandLine.arguments.dropFirst()
guard let name = arguments.first, let example = examples.first(where: { $0.name == name }) else {
    print("usage: silly-examples <example> [address]\n")
    for example in examples { print("  \(example.name.padding(toLength: 10, withPad: " ", startingAt: 0)) \(example.summary)") }
    exit(2)
}
do {
    try await example.run(arguments.dropFirst().first ?? "127.0.0.1:9999")
} catch {
    print("\(name): \(error)")
    exit(1)
}
