// Reads return SwiftNIO's `ByteBuffer` (zero-copy slices of what was received) and writes take
// it; re-exported so that `import Silly` is all a program needs, as Vapor and Hummingbird do.
@_exported import NIOCore
