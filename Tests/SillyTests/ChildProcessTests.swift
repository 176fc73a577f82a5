import Foundation
import SillyTestSupport
import Testing

/// The test support's own process starter: what the end-to-end tests rely on.
@Suite("ChildProcess: programs started by the tests")
struct ChildProcessTests {
    @Test("a started program holds its standard streams and nothing of the test process's descriptors")
    func descriptors() throws {
        let sockets = (0..<5).map { _ in RawSocket() }  // open here: the child must not inherit them
        let process = try ChildProcess("/bin/ls", ["/proc/self/fd"], output: .pipe)
        let listing = String(decoding: process.standardOutput!.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let descriptors = listing.split(whereSeparator: \.isNewline).compactMap { Int($0) }
        // 0, 1 and 2, and the directory `ls` opened to list them.
        #expect(descriptors.count == 4 && descriptors.allSatisfy { $0 <= 3 }, "\(descriptors) with \(sockets.count) sockets open here")
    }

    @Test("exit codes and signals are reported as Foundation's Process reports them")
    func status() throws {
        let exited = try ChildProcess("/bin/sh", ["-c", "exit 3"])
        exited.waitUntilExit()
        #expect(!exited.isRunning)
        #expect(exited.terminationStatus == 3)

        let killed = try ChildProcess("/bin/sleep", ["30"])
        #expect(killed.isRunning)
        killed.terminate()
        killed.waitUntilExit()
        #expect(killed.terminationStatus == SIGTERM)
    }

    @Test("standard input reaches the program; a missing program is an error")
    func inputAndMissing() throws {
        let process = try ChildProcess("/bin/cat", [], input: .pipe, output: .pipe)
        process.standardInput!.write(Data("through cat\n".utf8))
        try process.standardInput!.close()
        #expect(String(decoding: process.standardOutput!.readDataToEndOfFile(), as: UTF8.self) == "through cat\n")
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(throws: (any Error).self) { try ChildProcess("/nonexistent/program", []) }
    }
}
