import Foundation
import Silly

extension ServerProcess {
    /// The process's open descriptors (`/proc/PID/fd`).
    var openDescriptors: Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(self.process.processIdentifier)/fd").count) ?? -1
    }
}
