/// The tutorial's `silly.crypto.utils`.
public enum CryptoUtils {
    private static let letters = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)

    /// `length` random ASCII letters (a-z, A-Z) from the system's secure generator.
    /// The tutorial's `crypto.randomkey(n)`.
    public static func randomKey(_ length: Int) -> String {
        precondition(length >= 0, "a key length cannot be negative")
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<length).map { _ in Self.letters.randomElement(using: &generator)! }
        return String(decoding: bytes, as: UTF8.self)
    }
}
