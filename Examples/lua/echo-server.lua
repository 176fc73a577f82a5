-- The tutorial's "Complete Code": an echo server and 3 test clients, each sending 5 lines.
-- Run: silly Examples/lua/echo-server.lua [ADDR]   (ADDR defaults to 127.0.0.1:9999)
local silly = require "silly"
local task = require "silly.task"
local time = require "silly.time"
local crypto = require "silly.crypto.utils"
local tcp = require "silly.net.tcp"

local addr = arg[1] or "127.0.0.1:9999"

-- Start Echo server
local listener = tcp.listen {
	addr = addr,
	accept = function(conn)
		print("Accept connection", conn.remoteaddr)
		while true do
			-- Read one line
			local line, err = conn:read("\n")
			if err then
				print("Read error [", conn.remoteaddr, "] ->", err)
				break
			end
			-- Echo data
			local ok, werr = conn:write(line)
			if not ok then
				print("Write error [", conn.remoteaddr, "] ->", werr)
				break
			end
		end
		-- Close connection
		print("Close connection", conn.remoteaddr)
		conn:close()
	end
}
print(string.format("Listening on %s", listener.addr))

-- Start test clients: 3 clients, 5 messages each
for i = 1, 3 do
	task.fork(function()
		local conn, err = tcp.connect(listener.addr)
		if not conn then
			print("Connect failed:", err)
			return
		end
		print("Client", i, "connected:", conn.remoteaddr)
		for j = 1, 5 do
			local msg = crypto.randomkey(5) .. "\n"
			print("Send [", conn.remoteaddr, "] ->", msg)
			local ok, werr = conn:write(msg)
			if not ok then
				print("Send failed [", conn.remoteaddr, "] ->", werr)
				break
			end
			local recv, rerr = conn:read("\n")
			if not recv then
				print("Receive failed [", conn.remoteaddr, "] ->", rerr)
				break
			end
			print("Receive [", conn.remoteaddr, "] ->", recv)
			-- Verify echo data correctness
			assert(recv == msg, "Echo data mismatch!")
			time.sleep(1000)
		end
		print("Client close connection", conn.remoteaddr)
		conn:close()
	end)
end
