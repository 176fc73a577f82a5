import Silly
import Testing

@Suite("Delimiter")
struct DelimiterTests {
    @Test("a delimiter describes itself as it reads: an apostrophe as is; control characters, bytes not UTF-8, quotes and backslashes escaped")
    func description() {
        #expect("\(Delimiter.crlf)" == #""\r\n""#)
        #expect("\(Delimiter("it's é\n"))" == #""it's é\n""#)
        #expect("\(Delimiter([0xFF, 0, 0x1B])!)" == #""\xFF\0\u{1B}""#)
        // Longer than 8 bytes: stored apart, described alike.
        #expect("\(Delimiter("\"quoted\" \\ spilled"))" == #""\"quoted\" \\ spilled""#)
    }
}
