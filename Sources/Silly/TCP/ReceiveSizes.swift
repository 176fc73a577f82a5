import NIOCore

/// How large each read from a socket is: SwiftNIO's adaptive policy (`AdaptiveRecvByteBufferAllocator`),
/// in 13 bytes instead of 33.
///
/// A channel keeps its receive allocator in an existential, and SwiftNIO's adaptive one is too big
/// for the existential's inline buffer: every connection then gets a heap box for it on its first
/// read (64 bytes of an idle connection), and every read checks that box's uniqueness. This one
/// fits inline.
///
/// The policy is NIO's: sizes are powers of two between `minimum` and `maximum`; a read that fills
/// the buffer doubles the next one, and two reads in a row that fit in half of it halve it.
struct ReceiveSizes: RecvByteBufferAllocator {
    private let minimum: UInt32
    private let maximum: UInt32
    private var next: UInt32
    private var shrinkNext = false

    /// Rounds as NIO does: `minimum` and `initial` down to a power of two, `maximum` up, all
    /// clamped to 1 GiB. Unlike NIO's, `minimum` must be at least 1 (a 0-byte read buffer reads nothing).
    /// - Precondition: `1 <= minimum <= initial <= maximum`.
    init(minimum: Int, initial: Int, maximum: Int) {
        precondition(1 <= minimum && minimum <= initial && initial <= maximum)
        let limit = 1 << 30
        self.minimum = Self.powerOfTwo(atMost: min(minimum, limit))
        self.next = Self.powerOfTwo(atMost: min(initial, limit))
        self.maximum = Self.powerOfTwo(atLeast: min(maximum, limit))
    }

    func buffer(allocator: ByteBufferAllocator) -> ByteBuffer {
        allocator.buffer(capacity: Int(self.next))
    }

    func nextBufferSize() -> Int? {
        Int(self.next)
    }

    mutating func record(actualReadBytes: Int) -> Bool {
        let half = self.next / 2
        if actualReadBytes <= Int(half) && half >= self.minimum {
            if self.shrinkNext {
                self.next = half
            }
            self.shrinkNext.toggle()
            return false
        }
        self.shrinkNext = false
        if actualReadBytes >= Int(self.next) && self.next < self.maximum {
            self.next *= 2
            return true
        }
        return false
    }

    private static func powerOfTwo(atMost value: Int) -> UInt32 {
        UInt32(1) << (Int.bitWidth - 1 - value.leadingZeroBitCount)
    }

    private static func powerOfTwo(atLeast value: Int) -> UInt32 {
        let below = Self.powerOfTwo(atMost: value)
        return Int(below) == value ? below : below * 2
    }
}
