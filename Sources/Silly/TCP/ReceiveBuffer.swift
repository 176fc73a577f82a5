import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What a reader asks of the receive buffer.
@usableFromInline
enum ReadRequest: Sendable {
    /// Up to and including the delimiter, which must end within `maxLength` bytes
    /// (`nil`: the connection's `maxLineLength`). 32 bits, so a waiting read stays small.
    case line(Delimiter, maxLength: Int32?)
    /// Exactly this many bytes (0 is met at once, with an empty buffer).
    case count(Int)
    /// Whatever is buffered, at least one byte and at most `max`.
    case available(max: Int)
}

/// The bytes received and not yet read, and the search that cuts requests out of them.
///
/// Reads are slices of the received bytes (no copy), except small reads out of large buffers.
///
/// Invariants: `bytes` holds exactly the unread bytes (reader index at the first one), and is
/// `nil` when there are none: it then shares no storage with the channel's read buffers, so NIO
/// can reuse its pooled buffer (and no shared empty buffer is retained from every loop).
/// `searched` counts the leading bytes already scanned for the current line request's delimiter,
/// so a peer sending one byte at a time costs a linear, not quadratic, search.
struct ReceiveBuffer {
    private var bytes: ByteBuffer?
    private var searched = 0

    /// How many bytes are buffered.
    var count: Int { self.bytes?.readableBytes ?? 0 }

    /// Appends bytes read from the socket; the first chunk into an empty buffer is kept without a copy.
    ///
    /// Bytes already read stay at the front of the storage until discarded (SwiftNIO keeps them
    /// when it grows or copies a buffer), so a stream whose reads rarely end on a request boundary
    /// would grow the storage by every byte it ever carried. They are discarded once they are at
    /// least as many as the unread ones: the move is paid for by the bytes read, and the storage
    /// stays within about twice the unread bytes plus one socket read.
    mutating func append(_ incoming: ByteBuffer) {
        guard incoming.readableBytes > 0 else { return }
        guard var bytes = self.bytes.take() else {
            self.bytes = incoming
            return
        }
        if bytes.readerIndex > 0 && bytes.readerIndex >= bytes.readableBytes {
            bytes.discardReadBytes()
        }
        var incoming = incoming
        bytes.writeBuffer(&incoming)
        self.bytes = bytes
    }

    /// The size of the storage behind the unread bytes (what the buffer costs in memory).
    var storageCapacity: Int { self.bytes?.storageCapacity ?? 0 }

    /// Forgets how far the last line search got: a new request may have another delimiter.
    mutating func startRequest() {
        self.searched = 0
    }

    /// The result of trying a request against the buffered bytes.
    enum Outcome {
        case ready(ByteBuffer)
        case needMore
        case lineTooLong(limit: Int)
    }

    /// Cuts `request` out of the buffer if the bytes are there, as a slice sharing their storage.
    mutating func take(_ request: ReadRequest, maxLineLength: Int) -> Outcome {
        switch request {
        case .count(let wanted):
            guard self.count >= wanted else { return .needMore }
            return .ready(self.cut(wanted))
        case .available(let max):
            guard self.count > 0 else { return .needMore }
            return .ready(self.cut(min(max, self.count)))
        case .line(let delimiter, let requestedMaxLength):
            let maxLength = requestedMaxLength.map(Int.init) ?? maxLineLength
            if let end = self.findLineEnd(delimiter, within: maxLength) {
                self.searched = 0
                return .ready(self.cut(end))
            }
            // Past the limit no delimiter can end the line within it (nor can a delimiter longer
            // than the limit). At exactly the limit only the end of the stream can: the bytes are
            // then the last line, whole.
            return self.count > maxLength || delimiter.count > maxLength ? .lineTooLong(limit: maxLength) : .needMore
        }
    }

    /// Takes every buffered byte (the final, unterminated line after the peer closed).
    mutating func takeAll() -> ByteBuffer {
        self.searched = 0
        return self.cut(self.count)
    }

    /// Cuts `length` bytes off the front: a slice sharing the buffer's storage, unless that
    /// storage is large next to the slice (over 4 KiB and over 8 times its size). Then the bytes
    /// are copied out, so replies queued to a slow reader cannot each pin a large receive buffer.
    private mutating func cut(_ length: Int) -> ByteBuffer {
        guard length > 0, var bytes = self.bytes.take() else { return ByteBuffer() }
        let slice = bytes.readSlice(length: length)!
        if bytes.readableBytes > 0 {
            self.bytes = bytes
        }
        if slice.storageCapacity > max(4096, 8 * length) {
            return ByteBuffer(bytes: slice.readableBytesView)
        }
        return slice
    }

    /// The length of the first line, delimiter included, if it ends within `maxLength` bytes.
    private mutating func findLineEnd(_ delimiter: Delimiter, within maxLength: Int) -> Int? {
        guard let bytes = self.bytes else { return nil }
        let delimiterLength = delimiter.count
        let window = min(bytes.readableBytes, maxLength)
        // A delimiter may straddle the end of the previous search.
        let start = max(0, self.searched - (delimiterLength - 1))
        guard window - start >= delimiterLength else {
            return nil
        }
        let found: Int? = bytes.withUnsafeReadableBytes { raw in
            let base = raw.baseAddress!
            var position = start
            while position <= window - delimiterLength {
                guard let hit = memchr(base + position, Int32(delimiter.first), window - delimiterLength + 1 - position)
                else { return nil }
                let offset = base.distance(to: UnsafeRawPointer(hit))
                if delimiterLength == 1
                    || delimiter.withUnsafeBytes({ memcmp(hit, $0.baseAddress!, delimiterLength) }) == 0
                {
                    return offset + delimiterLength
                }
                position = offset + 1
            }
            return nil
        }
        if found == nil {
            self.searched = window
        }
        return found
    }
}
