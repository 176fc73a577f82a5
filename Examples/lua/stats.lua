-- Extension 3: per-connection statistics, printed when the connection ends.
-- Run: silly Examples/lua/stats.lua [ADDR]
local tcp = require "silly.net.tcp"

local listener = tcp.listen {
	addr = arg[1] or "127.0.0.1:9999",
	accept = function(conn)
		local bytes_recv = 0
		local bytes_sent = 0
		local msg_count = 0
		print("New connection:", conn.remoteaddr)
		while true do
			local line, err = conn:read("\n")
			if err then break end
			bytes_recv = bytes_recv + #line
			msg_count = msg_count + 1
			local ok = conn:write(line)
			if ok then
				bytes_sent = bytes_sent + #line
			else
				break
			end
		end
		conn:close()
		print(string.format("Connection %s statistics: received %d bytes, sent %d bytes, messages %d",
			conn.remoteaddr, bytes_recv, bytes_sent, msg_count))
	end
}
print(string.format("Listening on %s", listener.addr))
