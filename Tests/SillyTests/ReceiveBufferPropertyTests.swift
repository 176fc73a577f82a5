import Foundation
import NIOCore
import SillyTestSupport
import Testing

@testable import Silly

/// The receive buffer against a model of what it must do, over seeded random byte streams cut
/// into random segments and random sequences of requests: the long-running form of a fuzz
/// target. `SILLY_PROPERTY_CASES` sets the number of cases (default 1,000; RELIABILITY.md notes
/// longer runs).
@Suite("Receive buffer: seeded property run against a model")
struct ReceiveBufferPropertyTests {
    /// What a request must get from `model` (the unread bytes), by the buffer's contract.
    enum Expected: Equatable {
        case ready([UInt8])
        case needMore
        case lineTooLong
    }

    static func expected(_ request: ReadRequest, model: [UInt8], maxLineLength: Int) -> Expected {
        switch request {
        case .count(let wanted):
            return model.count >= wanted ? .ready(Array(model.prefix(wanted))) : .needMore
        case .available(let max):
            return model.isEmpty ? .needMore : .ready(Array(model.prefix(max)))
        case .line(let delimiter, let requested):
            let limit = requested.map(Int.init) ?? maxLineLength
            let needle = delimiter.bytes
            let window = min(model.count, limit)
            if window >= needle.count {
                for start in 0...(window - needle.count) where Array(model[start..<start + needle.count]) == needle {
                    return .ready(Array(model.prefix(start + needle.count)))
                }
            }
            // Past the limit no line can end within it; at exactly the limit, only the stream's
            // end (it is then the last line). None can end with a delimiter longer than the limit.
            return model.count > limit || needle.count > limit ? .lineTooLong : .needMore
        }
    }

    static func check(seed: UInt64) -> String? {
        var random = SeededGenerator(seed: seed)
        let alphabet: [UInt8] = [UInt8(ascii: "a"), UInt8(ascii: "b"), UInt8(ascii: "\r"), UInt8(ascii: "\n"), 0, 0xFF]
        let delimiters: [Delimiter] = ["\n", "\r\n", "ab", "\n\n\n", Delimiter([0, 0xFF])!, "abababab\r\n"]
        let maxLineLength = Int.random(in: 4...64, using: &random)
        var buffer = ReceiveBuffer()
        var model: [UInt8] = []
        var pending: ReadRequest?
        for step in 0..<300 {
            if pending == nil {
                switch Int.random(in: 0..<4, using: &random) {
                case 0: pending = .count(Int.random(in: 0...40, using: &random))
                case 1: pending = .available(max: Int.random(in: 1...40, using: &random))
                default:
                    let limit: Int32? = Bool.random(using: &random) ? nil : Int32.random(in: 1...80, using: &random)
                    pending = .line(delimiters.randomElement(using: &random)!, maxLength: limit)
                }
                buffer.startRequest()
            } else {
                let chunk = (0..<Int.random(in: 0...24, using: &random)).map { _ in alphabet.randomElement(using: &random)! }
                var incoming = ByteBufferAllocator().buffer(capacity: chunk.count)
                incoming.writeBytes(chunk)
                buffer.append(incoming)
                model += chunk
            }
            let request = pending!
            let want = Self.expected(request, model: model, maxLineLength: maxLineLength)
            let got: Expected
            switch buffer.take(request, maxLineLength: maxLineLength) {
            case .ready(let data): got = .ready(Array(buffer: data))
            case .needMore: got = .needMore
            case .lineTooLong: got = .lineTooLong
            }
            guard got == want else {
                return "seed \(seed) step \(step): \(request) on \(model): got \(got), want \(want)"
            }
            switch got {
            case .ready(let data):
                model.removeFirst(data.count)
                pending = nil
            case .lineTooLong:
                pending = nil
            case .needMore:
                break
            }
            guard buffer.count == model.count else { return "seed \(seed) step \(step): count \(buffer.count), model \(model.count)" }
        }
        return nil
    }

    @Test("every request gets what a model of the buffer says, over thousands of seeded random streams")
    func property() async {
        let cases = ProcessInfo.processInfo.environment["SILLY_PROPERTY_CASES"].flatMap(UInt64.init) ?? 1000
        // Seconds of CPU in a debug build: on a thread of its own, not the concurrency pool's.
        let failure = await offThePool { (0..<cases).lazy.compactMap { Self.check(seed: $0) }.first }
        if let failure { Issue.record(Comment(rawValue: failure)) }
    }
}
