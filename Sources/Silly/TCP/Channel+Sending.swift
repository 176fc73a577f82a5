import NIOCore

extension ChannelHandlerContext {
    /// Flushes, and returns a future that completes once every byte written before this call
    /// has been handed to the kernel (or failed: the channel then closed). Writes complete in
    /// order, so an empty write queued behind them completes when they have.
    func writtenBytesSent() -> EventLoopFuture<Void> {
        let sent = self.eventLoop.makePromise(of: Void.self)
        self.writeAndFlush(NIOAny(ByteBuffer()), promise: sent)
        return sent.futureResult
    }
}

extension Channel {
    /// The bytes written to the channel and not yet handed to the kernel (on its loop).
    var unsentBytes: Int {
        (try? self.syncOptions?.getOption(ChannelOptions.bufferedWritableBytes)) ?? 0
    }
}
