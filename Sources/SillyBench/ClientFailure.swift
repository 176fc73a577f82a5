import NIOCore
import Silly

/// What stopped one client: the kind of failure, and for a mismatch what came instead.
///
/// Two parts because what came is often the client's own line (cut short, corrupted), different
/// for every client: as part of the reason, 100 clients failing alike read as 100 reasons. The
/// report counts clients by ``kind`` and quotes one of them.
struct ClientFailure: Sendable {
    /// The kind of failure, without anything particular to the client:
    /// `connect: connection refused: 127.0.0.1:9999`, `mismatch: an echo came back different`.
    var kind: String
    /// What came instead of the echo, quoted (``quoted(_:)``); `nil` when nothing did.
    var received: String?

    init(_ kind: String, received: String? = nil) {
        self.kind = kind
        self.received = received
    }

    /// What came, quoted for ``received`` as it reads: its first 60 bytes, enough to recognise
    /// a server's refusal on one line of the report.
    static func quoted(_ bytes: ByteBuffer) -> String {
        QuotedText.quoted(bytes.readableBytesView, limit: 60)
    }
}

/// The clients that failed one way: how many, and what the first of them received.
struct FailureGroup: Sendable {
    let kind: String
    private(set) var clients = 0
    private(set) var received: String?
    /// The clients received different text (each its own line, say): ``received`` is one example.
    private(set) var receivedDiffers = false

    init(kind: String) {
        self.kind = kind
    }

    mutating func add(_ failure: ClientFailure) {
        if self.clients == 0 {
            self.received = failure.received
        } else if failure.received != self.received {
            self.receivedDiffers = true
        }
        self.clients += 1
    }

    /// The kind, then what came: `…: "Server is full\n"` when every client received just that,
    /// `…, e.g. "c0-de"` when they received different text.
    var reason: String {
        guard let received = self.received else { return self.kind }
        return self.kind + (self.receivedDiffers ? ", e.g. " : ": ") + received
    }
}
