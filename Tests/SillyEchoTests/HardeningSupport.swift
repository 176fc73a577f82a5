import Foundation
import Silly

#if canImport(Glibc)
import Glibc
#endif

/// A blocking client socket, for what a well-behaved client would not do: reset the connection.
struct RawSocket {
    let descriptor: Int32

    init(port: Int) throws {
        self.descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(self.descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw SillyError.system(errno: errno) }
    }

    /// Sends what the socket takes now, without waiting; returns how many bytes that was.
    func sendAvailable(_ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { Glibc.send(self.descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
    }

    /// Closes with SO_LINGER 0: the kernel sends RST, dropping whatever is unsent.
    func reset() {
        var option = linger(l_onoff: 1, l_linger: 0)
        setsockopt(self.descriptor, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        close(self.descriptor)
    }
}

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
