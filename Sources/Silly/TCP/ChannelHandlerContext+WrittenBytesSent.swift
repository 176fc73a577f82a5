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
