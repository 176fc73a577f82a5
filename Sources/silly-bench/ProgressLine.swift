import Foundation
import Synchronization

/// The progress line on standard output, redrawn in place after a carriage return, and the
/// messages that must not land on it.
///
/// On a terminal, standard error writes where standard output's cursor is: a message written
/// while the progress line shows would run on from it (`1200/10000 messages, 2400 msg/ssilly-bench:
/// stopping…`). So messages go through ``say(_:)``, which ends the progress line first, under
/// the lock the redraws take, so none slips in between.
final class ProgressLine: Sendable {
    /// Whether a progress line is drawn and not yet ended or erased.
    private let showing = Mutex(false)

    /// Redraws the line as `text`.
    func draw(_ text: String) {
        self.showing.withLock { showing in
            FileHandle.standardOutput.write(Data("\r\u{1B}[K\(text)".utf8))
            showing = true
        }
    }

    /// Writes `message` and a newline on standard error, starting a line of its own: a newline
    /// ends the progress line first if one shows (the next redraw comes below the message).
    func say(_ message: String) {
        self.showing.withLock { showing in
            if showing {
                FileHandle.standardOutput.write(Data("\n".utf8))
                showing = false
            }
            FileHandle.standardError.write(Data("\(message)\n".utf8))
        }
    }

    /// Erases the progress line, if one shows, for the report printed in its place.
    func erase() {
        self.showing.withLock { showing in
            if showing {
                FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8))
                showing = false
            }
        }
    }
}
