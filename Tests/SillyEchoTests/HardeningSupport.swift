import Foundation
import Silly

extension ServerProcess {
    /// The process's open descriptors (`/proc/PID/fd`).
    var openDescriptors: Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(self.process.processIdentifier)/fd").count) ?? -1
    }
}

extension TCPConnection {
    /// Reads until the peer closes; everything it sent.
    func readToEnd() async throws(SillyError) -> [UInt8] {
        var received: [UInt8] = []
        while true {
            do throws(SillyError) {
                received += Array(buffer: try await self.readAvailable(timeout: .seconds(20)))
            } catch {
                if error == .endOfStream { return received }
                throw error
            }
        }
    }
}
