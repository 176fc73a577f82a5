import Silly
import Testing

@Suite("QuotedText: bytes quoted as they read")
struct QuotedTextTests {
    @Test("a limit cuts after whole characters and says so with …; bytes not UTF-8 are \\xNN, a cut-short character too")
    func limit() {
        #expect(QuotedText.quoted([UInt8]()) == #""""#)
        #expect(QuotedText.quoted("abc".utf8, limit: 2) == #""ab"…"#)
        #expect(QuotedText.quoted("abc".utf8, limit: 3) == #""abc""#)
        #expect(QuotedText.quoted("aé".utf8, limit: 2) == #""aé""#)
        #expect(QuotedText.quoted([0x61, 0xFF, 0xFE, 0x62], limit: 2) == #""a\xFF"…"#)
        #expect(QuotedText.quoted([0x61, 0xE2, 0x82]) == #""a\xE2\x82""#)
    }
}
