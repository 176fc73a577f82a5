-- Extension 1: a connection counter.
-- Run: silly Examples/lua/counter.lua [ADDR]
local tcp = require "silly.net.tcp"

local connections = 0
local listener = tcp.listen {
	addr = arg[1] or "127.0.0.1:9999",
	accept = function(conn)
		connections = connections + 1
		print(string.format("New connection from %s, current connections: %d",
			conn.remoteaddr, connections))
		while true do
			local line, err = conn:read("\n")
			if err then break end
			conn:write(line)
		end
		connections = connections - 1
		conn:close()
		print(string.format("Connection closed %s, remaining connections: %d",
			conn.remoteaddr, connections))
	end
}
print(string.format("Listening on %s", listener.addr))
