import NIOCore

/// Reads a PROXY protocol header (HAProxy's `doc/proxy-protocol.txt`, versions 1 and 2) from the
/// first bytes of a connection, however they were split into segments.
enum ProxyHeaderParser {
    /// What the bytes so far amount to.
    enum Outcome: Equatable {
        /// A complete header, `length` bytes long; the payload starts after it.
        case header(ProxyHeader, length: Int)
        /// A header may still be completed by more bytes.
        case needMoreBytes
    }

    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    private static let v1Prefix = Array("PROXY ".utf8)
    /// `PROXY TCP6` and two full IPv6 addresses and ports: 107 bytes with the CRLF.
    static let v1MaxLength = 107

    /// Parses the readable bytes of `bytes` (without consuming them).
    /// - Throws: ``ProxyHeaderError/missing``, ``ProxyHeaderError/malformed(_:)`` or
    ///   ``ProxyHeaderError/oversized(limit:)`` as soon as the bytes so far decide it.
    static func parse(_ bytes: ByteBuffer, maxHeaderLength: Int) throws(ProxyHeaderError) -> Outcome {
        let view = bytes.readableBytesView
        if Self.startsLike(Self.v2Signature, view) {
            return try Self.parseV2(bytes, maxHeaderLength: maxHeaderLength)
        }
        if Self.startsLike(Self.v1Prefix, view) {
            return try Self.parseV1(bytes)
        }
        throw .missing
    }

    /// Whether the bytes so far agree with `prefix` (all of it, or as much as has arrived).
    private static func startsLike(_ prefix: [UInt8], _ view: ByteBufferView) -> Bool {
        zip(prefix, view).allSatisfy { $0 == $1 }
    }

    // MARK: Version 1

    private static func parseV1(_ bytes: ByteBuffer) throws(ProxyHeaderError) -> Outcome {
        let view = bytes.readableBytesView
        guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else {
            if view.count >= Self.v1MaxLength { throw .oversized(limit: Self.v1MaxLength) }
            return .needMoreBytes
        }
        let length = newline - view.startIndex + 1
        guard length <= Self.v1MaxLength else { throw .oversized(limit: Self.v1MaxLength) }
        guard length >= 2, view[newline - 1] == UInt8(ascii: "\r") else {
            throw .malformed("the v1 line must end with CRLF")
        }
        let line = view[view.startIndex..<(newline - 1)]
        guard line.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
            throw .malformed("the v1 line holds a byte that is not printable ASCII")
        }
        let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        // fields[0] is "PROXY" (checked by the prefix).
        guard fields.count >= 2 else { throw .malformed("no protocol after PROXY") }
        switch fields[1] {
        case "UNKNOWN":
            // The rest of the line may hold anything; the sender could not tell the addresses.
            return .header(ProxyHeader(version: .v1, command: .proxy, source: nil, destination: nil), length: length)
        case "TCP4", "TCP6":
            guard fields.count == 6 else {
                throw .malformed("expected 'PROXY \(fields[1]) SOURCE DESTINATION SPORT DPORT'")
            }
            let family = fields[1] == "TCP4" ? 4 : 6
            let source = try Self.v1Endpoint(address: fields[2], port: fields[4], family: family)
            let destination = try Self.v1Endpoint(address: fields[3], port: fields[5], family: family)
            return .header(
                ProxyHeader(version: .v1, command: .proxy, source: source, destination: destination),
                length: length
            )
        default:
            throw .malformed("unknown protocol '\(fields[1])' (TCP4, TCP6 or UNKNOWN)")
        }
    }

    private static func v1Endpoint(address: String, port: String, family: Int) throws(ProxyHeaderError) -> Endpoint {
        // Decimal, 0...65535, no sign and no leading zero.
        guard !port.isEmpty, port.count <= 5, port.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              port == "0" || !port.hasPrefix("0"), let number = Int(port), number <= 65535
        else {
            throw .malformed("bad port '\(port)'")
        }
        guard let parsed = try? SocketAddress(ipAddress: address, port: number),
              family == 4 ? parsed.protocol == .inet : parsed.protocol == .inet6,
              let endpoint = Endpoint(parsed)
        else {
            throw .malformed("bad IPv\(family) address '\(address)'")
        }
        return endpoint
    }

    // MARK: Version 2

    private static func parseV2(_ bytes: ByteBuffer, maxHeaderLength: Int) throws(ProxyHeaderError) -> Outcome {
        guard bytes.readableBytes >= 16 else { return .needMoreBytes }
        let start = bytes.readerIndex
        let versionAndCommand = bytes.getInteger(at: start + 12, as: UInt8.self)!
        let familyAndProtocol = bytes.getInteger(at: start + 13, as: UInt8.self)!
        let addressLength = Int(bytes.getInteger(at: start + 14, as: UInt16.self)!)
        guard versionAndCommand >> 4 == 2 else {
            throw .malformed("version \(versionAndCommand >> 4) in the v2 header (only 2 exists)")
        }
        let command: ProxyHeader.Command
        switch versionAndCommand & 0x0F {
        case 0: command = .local
        case 1: command = .proxy
        default: throw .malformed("unknown v2 command \(versionAndCommand & 0x0F)")
        }
        let length = 16 + addressLength
        guard length <= maxHeaderLength else { throw .oversized(limit: maxHeaderLength) }
        guard bytes.readableBytes >= length else { return .needMoreBytes }

        // LOCAL: the proxy's own connection; the family and the block are to be ignored.
        if command == .local {
            return .header(ProxyHeader(version: .v2, command: .local, source: nil, destination: nil), length: length)
        }
        // Address block: source and destination addresses, then ports; TLVs fill the rest.
        // UNSPEC, or TCP/UDP over IPv4, IPv6 or a Unix socket: any other value must be refused.
        let addressBytes: Int
        switch familyAndProtocol {
        case 0x00: addressBytes = 0
        case 0x11, 0x12: addressBytes = 12
        case 0x21, 0x22: addressBytes = 36
        case 0x31, 0x32: addressBytes = 216
        default:
            throw .malformed("unknown v2 address family and protocol 0x\(String(familyAndProtocol, radix: 16, uppercase: true))")
        }
        let block = start + 16
        guard addressLength >= addressBytes else {
            throw .malformed("address block of \(addressLength) bytes, \(addressBytes) needed")
        }
        try Self.checkTLVs(bytes, from: block + addressBytes, to: start + length)

        var source: Endpoint?
        var destination: Endpoint?
        // Only TCP over IPv4 or IPv6 names a peer a TCP connection can stand for.
        if familyAndProtocol == 0x11 || familyAndProtocol == 0x21 {
            let size = familyAndProtocol == 0x11 ? 4 : 16
            source = Self.v2Endpoint(bytes, address: block, size: size, port: block + 2 * size)
            destination = Self.v2Endpoint(bytes, address: block + size, size: size, port: block + 2 * size + 2)
        }
        return .header(ProxyHeader(version: .v2, command: .proxy, source: source, destination: destination), length: length)
    }

    private static func v2Endpoint(_ bytes: ByteBuffer, address: Int, size: Int, port: Int) -> Endpoint? {
        guard let packed = bytes.getSlice(at: address, length: size),
              let port = bytes.getInteger(at: port, as: UInt16.self)
        else { return nil }
        return Endpoint(try? SocketAddress(packedIPAddress: packed, port: Int(port)))
    }

    /// TLVs (type, 16-bit length, value) are skipped, but each must end inside the header.
    private static func checkTLVs(_ bytes: ByteBuffer, from start: Int, to end: Int) throws(ProxyHeaderError) {
        var index = start
        while index < end {
            guard index + 3 <= end, let length = bytes.getInteger(at: index + 1, as: UInt16.self),
                  index + 3 + Int(length) <= end
            else {
                throw .malformed("a TLV runs past the end of the v2 header")
            }
            index += 3 + Int(length)
        }
    }
}
