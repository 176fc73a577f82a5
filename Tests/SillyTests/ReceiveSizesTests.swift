import NIOCore
import SillyTestSupport
import Testing

@testable import Silly

/// The receive-size policy is SwiftNIO's adaptive one, stored small enough to need no heap box:
/// over random sequences of read sizes it must choose exactly the sizes NIO's would.
@Suite("Receive sizes")
struct ReceiveSizesTests {
    @Test("the same sizes as SwiftNIO's adaptive allocator", arguments: [(64, 64, 65536), (64, 2048, 65536), (100, 1000, 5000), (100, 100, 100)])
    func sameAsNIO(bounds: (minimum: Int, initial: Int, maximum: Int)) {
        var generator = SeededGenerator(seed: UInt64(bounds.initial))
        var ours = ReceiveSizes(minimum: bounds.minimum, initial: bounds.initial, maximum: bounds.maximum)
        var nio = AdaptiveRecvByteBufferAllocator(minimum: bounds.minimum, initial: bounds.initial, maximum: bounds.maximum)
        #expect(ours.nextBufferSize() == nio.nextBufferSize())
        for step in 0..<5000 {
            let size = ours.nextBufferSize()!
            // Mostly full or small reads, the cases that move the size.
            let read =
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: size
                case 1: Int.random(in: 1...max(1, size / 2), using: &generator)
                default: Int.random(in: 1...size, using: &generator)
                }
            let grew = ours.record(actualReadBytes: read)
            #expect(grew == nio.record(actualReadBytes: read), "step \(step)")
            #expect(ours.nextBufferSize() == nio.nextBufferSize(), "step \(step)")
            #expect(ours.buffer(allocator: ByteBufferAllocator()).capacity >= ours.nextBufferSize()!)
        }
    }

    @Test("bulk reads grow the buffer to the maximum; small ones shrink it to the minimum")
    func growsAndShrinks() {
        var sizes = ReceiveSizes(minimum: 64, initial: 64, maximum: 65536)
        for _ in 0..<20 { _ = sizes.record(actualReadBytes: sizes.nextBufferSize()!) }
        #expect(sizes.nextBufferSize() == 65536)
        for _ in 0..<40 { _ = sizes.record(actualReadBytes: 1) }
        #expect(sizes.nextBufferSize() == 64)
    }

    @Test("sizes above 1 GiB are clamped as NIO clamps them")
    func clampsLikeNIO() {
        let ours = ReceiveSizes(minimum: 64, initial: 3 << 30, maximum: 1 << 40)
        let nio = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 3 << 30, maximum: 1 << 40)
        #expect(ours.nextBufferSize() == nio.nextBufferSize())
        #expect(ours.nextBufferSize() == 1 << 30)
    }

    @Test("small enough to be stored inline in a channel's existential")
    func fitsInline() {
        #expect(MemoryLayout<ReceiveSizes>.size <= 3 * MemoryLayout<Int>.size)
    }
}
