import CLuaShim
import Silly

/// `silly.crypto.utils`: `randomkey(n)`, n random letters.
enum CryptoModule {
    static let functions: KeyValuePairs<String, silly_host_function> = [
        "randomkey": { state in
            let stack = LuaStack(state!)
            guard let length = stack.integer(at: 1), (0...1 << 20).contains(length) else {
                return stack.argumentError(1, "randomkey", "length from 0 to 1048576 expected")
            }
            stack.push(CryptoUtils.randomKey(Int(length)))
            return 1
        },
    ]
}
