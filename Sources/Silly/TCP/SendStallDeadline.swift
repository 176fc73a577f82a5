import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// The deadline of a close that lets written bytes drain first: it gives up (runs `expire`)
/// once a whole `patience` has passed in which the peer took less than
/// ``minimumProgress`` of them.
///
/// A peer that stopped reading is cut off after `patience`, while one that keeps reading at a
/// modest pace gets every byte: an absolute deadline would cut a 4 MiB reply to a slow link,
/// or to a busy peer, after 5 s. The pace bounds how long a closed connection can hold its
/// descriptor (a few minutes for the default 4 MiB send queue, at the default 5 s). Progress is counted
/// in bytes the peer acknowledged (TCP_INFO): the kernel's send buffer alone can hold 4 MiB,
/// which a slow reader may take longer than `patience` to drain before the channel's queue
/// moves. Once the channel's queue is empty, the kernel sends the rest after the close, and
/// the peer gets `afterSent` more (to end its side) before `expire` runs; while it is still
/// sending (its end comes after what it sends), up to `patience` more in all: closed with its bytes
/// unread, the socket would answer them with a reset, which can destroy what the peer has not
/// read yet. Checks stop when the channel closes.
final class SendStallDeadline {
    /// What the peer must take in each `patience` to keep the close waiting: 64 KiB per 5 s is
    /// about 100 kbit/s.
    static let minimumProgress: UInt64 = 64 * 1024

    private let channel: any Channel
    private let patience: TimeAmount
    private let afterSent: TimeAmount
    private let expire: () -> Void
    private var lastCheck: Progress
    private var nextCheck: Scheduled<Void>?
    /// How long the close has waited, everything sent, only because the peer was still sending:
    /// at most `patience` over the whole close.
    private var waitedForPeerEnd = TimeAmount.zero

    /// Starts checking the channel's progress; call on its event loop.
    @discardableResult
    static func start(on channel: any Channel, patience: TimeAmount, afterSent: TimeAmount,
                      expire: @escaping () -> Void) -> SendStallDeadline {
        let deadline = SendStallDeadline(channel: channel, patience: patience, afterSent: afterSent, expire: expire)
        deadline.armNextCheck()
        channel.closeFuture.assumeIsolated().whenComplete { _ in deadline.cancel() }
        return deadline
    }

    private init(channel: any Channel, patience: TimeAmount, afterSent: TimeAmount, expire: @escaping () -> Void) {
        self.channel = channel
        self.patience = patience
        self.afterSent = afterSent
        self.expire = expire
        self.lastCheck = Progress(of: channel)
    }

    /// Stops the checks; `expire` will not run.
    func cancel() {
        self.nextCheck?.cancel()
        self.nextCheck = nil
    }

    /// A whole `patience` while bytes wait in the channel; once they are all sent, `afterSent`.
    private var delay: TimeAmount {
        self.lastCheck.unsent > 0 ? self.patience : min(self.patience, self.afterSent)
    }

    private func armNextCheck(in delay: TimeAmount? = nil) {
        self.nextCheck = self.channel.eventLoop.assumeIsolated().scheduleTask(in: delay ?? self.delay) { self.check() }
    }

    private func check() {
        self.nextCheck = nil
        let now = Progress(of: self.channel)
        if now.isAhead(of: self.lastCheck) {
            self.lastCheck = now
            self.armNextCheck()
        } else if now.unsent == 0 && now.received > self.lastCheck.received && self.waitedForPeerEnd < self.patience {
            let wait = min(self.delay, self.patience - self.waitedForPeerEnd)
            self.waitedForPeerEnd = self.waitedForPeerEnd + wait
            self.lastCheck = now
            self.armNextCheck(in: wait)
        } else {
            self.expire()
        }
    }
}

/// How far a connection's sending has come.
private struct Progress {
    /// Bytes the peer has acknowledged since the connection opened (0 where unknown).
    var acknowledged: UInt64
    /// Bytes received from the peer since the connection opened (0 where unknown).
    var received: UInt64
    /// Bytes still queued in the channel.
    var unsent: Int

    init(of channel: any Channel) {
        (self.acknowledged, self.received) = Self.transferredBytes(of: channel)
        self.unsent = channel.unsentBytes
    }

    /// Whether the peer took enough since `earlier` for the close to wait on.
    func isAhead(of earlier: Progress) -> Bool {
        if self.unsent == 0 && earlier.unsent > 0 { return true }  // the channel's queue emptied
        guard self.acknowledged > 0 else { return self.unsent < earlier.unsent }  // no TCP_INFO
        return self.acknowledged >= earlier.acknowledged + SendStallDeadline.minimumProgress
    }

    /// `tcpi_bytes_acked` and `tcpi_bytes_received` of the channel's socket; 0 where the
    /// channel has no socket.
    private static func transferredBytes(of channel: any Channel) -> (acknowledged: UInt64, received: UInt64) {
        #if os(Linux)
        assert(MemoryLayout<TCPInfoThroughBytesReceived>.offset(of: \.bytesAcked) == 120, "linux/tcp.h's layout")
        assert(MemoryLayout<TCPInfoThroughBytesReceived>.offset(of: \.bytesReceived) == 128, "linux/tcp.h's layout")
        guard let socket = channel as? any SocketOptionProvider else { return (0, 0) }
        var transferred: (UInt64, UInt64) = (0, 0)
        // On the channel's loop the option is read at once, so the future is already complete.
        let info: EventLoopFuture<TCPInfoThroughBytesReceived> = socket.unsafeGetSocketOption(level: .tcp, name: .tcp_info)
        info.assumeIsolated().whenSuccess { transferred = ($0.bytesAcked, $0.bytesReceived) }
        return transferred
        #else
        return (0, 0)
        #endif
    }
}

#if os(Linux)
/// Linux's `struct tcp_info` up to `tcpi_bytes_received` (Linux 4.1); Glibc's `tcp_info` ends
/// before them. The kernel fills as much as the length asks for, and only appends fields.
struct TCPInfoThroughBytesReceived: Sendable {
    var glibcFields = tcp_info()
    var pacingRate: UInt64 = 0
    var maxPacingRate: UInt64 = 0
    var bytesAcked: UInt64 = 0
    var bytesReceived: UInt64 = 0
}
#endif
