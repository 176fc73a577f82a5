import NIOCore

/// Sits between the socket and the TLS handler: a full close waits until the bytes queued before
/// it — the TLS handler's close_notify above all — are handed to the kernel (giving up once the
/// peer takes less than 64 KiB of them in `patience`: ``SendStallDeadline``).
///
/// When the peer's close_notify has already arrived, NIOSSLHandler closes the channel straight
/// after writing its own; if the socket's send buffer is full at that moment (a large reply just
/// went out), SwiftNIO's close drops the unsent close_notify, and the peer, though every byte of
/// data reached it, sees a TCP end without one: `uncleanShutdown`, the sign of a truncated stream.
final class CloseAfterPendingWrites: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = NIOAny

    private let patience: TimeAmount
    private var closeDeferred = false

    init(patience: TimeAmount) {
        self.patience = patience
    }

    /// ``AbortConnection`` closes the channel here, at once: past the TLS handler's close_notify
    /// (and its wait for the peer's) and past any wait for queued bytes.
    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard event is AbortConnection else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        context.close(mode: .all, promise: promise)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .all, !self.closeDeferred, context.channel.unsentBytes > 0 else {
            context.close(mode: mode, promise: promise)
            return
        }
        self.closeDeferred = true
        var closed = false
        let closeOnce = {
            guard !closed else { return }
            closed = true
            context.close(mode: .all, promise: promise)
        }
        let deadline = SendStallDeadline.start(on: context.channel, patience: self.patience, afterSent: .zero) {
            closeOnce()
        }
        context.writtenBytesSent().assumeIsolated().whenComplete { _ in
            deadline.cancel()
            closeOnce()
        }
    }
}

/// Asks ``CloseAfterPendingWrites``, below the TLS handler, to close the channel at once
/// (``ConnectionEngine/abort()``).
struct AbortConnection {}
