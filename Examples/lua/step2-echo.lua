-- The tutorial's Step 2: the echo loop alone (the server BENCHMARKS.md measures).
-- Run: silly Examples/lua/step2-echo.lua [ADDR]
local tcp = require "silly.net.tcp"

local listener = tcp.listen {
	addr = arg[1] or "127.0.0.1:9999",
	accept = function(conn)
		print("New client connection:", conn.remoteaddr)
		while true do
			local data, err = conn:read("\n")
			if err then
				print("Read error:", err)
				break
			end
			local ok, werr = conn:write(data)
			if not ok then
				print("Write error:", werr)
				break
			end
		end
		conn:close()
	end
}
print(string.format("Listening on %s", listener.addr))
