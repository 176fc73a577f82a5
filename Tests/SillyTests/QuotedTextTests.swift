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

    @Test("what a terminal would act on or not show is escaped: controls, format characters (a right-to-left override), line separators")
    func invisible() {
        #expect(QuotedText.quoted("a\u{1B}[2Jb".utf8) == #""a\u{1B}[2Jb""#)
        #expect(QuotedText.quoted("abc\u{202E}fed".utf8) == #""abc\u{202E}fed""#)
        #expect(QuotedText.quoted("zero\u{200B}width".utf8) == #""zero\u{200B}width""#)
        #expect(QuotedText.quoted("one\u{2028}two".utf8) == #""one\u{2028}two""#)
        #expect(QuotedText.quoted("it's café, \"quoted\" \\ ok".utf8) == #""it's café, \"quoted\" \\ ok""#)
    }
}
