// The tutorial's Step 2 echo loop on the Silly API: the server BENCHMARKS.md measures.
// usage: silly-step2-echo [PORT]
import Silly

let port = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "9999"
let listener = try await TCP.listen("127.0.0.1:\(port)") { conn in
    while true {
        let line = try await conn.read(until: "\n")
        try await conn.write(line)
    }
}
await listener.waitUntilClosed()
