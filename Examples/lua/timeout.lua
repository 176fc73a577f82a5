-- Extension 2: close a connection idle for IDLE_MS (30 s by default), with time.after/cancel.
-- Run: silly Examples/lua/timeout.lua [ADDR] [IDLE_MS]
local time = require "silly.time"
local tcp = require "silly.net.tcp"

local idle_ms = tonumber(arg[2]) or 30000

local listener = tcp.listen {
	addr = arg[1] or "127.0.0.1:9999",
	accept = function(conn)
		print("New connection:", conn.remoteaddr)
		local function on_timeout()
			print("Connection timeout:", conn.remoteaddr)
			conn:close()
		end
		local timeout_timer = time.after(idle_ms, on_timeout)
		while true do
			local line, err = conn:read("\n")
			if err then break end
			-- Data activity, reset timeout
			time.cancel(timeout_timer)
			timeout_timer = time.after(idle_ms, on_timeout)
			conn:write(line)
		end
		time.cancel(timeout_timer)
		conn:close()
	end
}
print(string.format("Listening on %s", listener.addr))
