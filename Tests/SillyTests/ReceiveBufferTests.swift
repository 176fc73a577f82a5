import NIOCore
import Testing

@testable import Silly

@Suite("Receive buffer: memory")
struct ReceiveBufferTests {
    /// A stream whose socket reads never end on a request boundary keeps a partial request
    /// buffered forever. The bytes read in front of it must not pile up in the storage.
    @Test(
        "a stream whose reads never end on a request boundary keeps the storage small",
        arguments: [(ReadRequest.line("\n", maxLength: nil), 1_000), (.count(700), 700)]
    )
    func storageStaysBounded(request: ReadRequest, recordLength: Int) {
        let record = [UInt8](repeating: UInt8(ascii: "x"), count: recordLength - 1) + [UInt8(ascii: "\n")]
        let half = recordLength / 2
        // Half a record, then chunks of three records shifted by half of one: every chunk ends
        // in the middle of a record.
        let first = ByteBuffer(bytes: record.prefix(half))
        let shifted = ByteBuffer(bytes: Array([Array(record.suffix(recordLength - half)), record, record, Array(record.prefix(half))].joined()))
        var buffer = ReceiveBuffer()
        var largestStorage = 0
        var bytesRead = 0
        var bytesSent = 0
        for round in 0..<5_000 {  // 15 MB of lines, 10 MB of records
            let chunk = round == 0 ? first : shifted
            buffer.append(chunk)
            bytesSent += chunk.readableBytes
            buffer.startRequest()
            while case .ready(let data) = buffer.take(request, maxLineLength: 64 * 1024) {
                bytesRead += data.readableBytes
                buffer.startRequest()
            }
            largestStorage = max(largestStorage, buffer.storageCapacity)
        }
        #expect(buffer.count == half)
        #expect(bytesRead + buffer.count == bytesSent)
        #expect(largestStorage <= 16 * 1024, "the storage grew to \(largestStorage) bytes")
    }
}
