-- Extension 4: a small command protocol (help, time, quit; anything else is echoed).
-- Run: silly Examples/lua/protocol.lua [ADDR], then: telnet 127.0.0.1 9999
local tcp = require "silly.net.tcp"

local listener = tcp.listen {
	addr = arg[1] or "127.0.0.1:9999",
	accept = function(conn)
		conn:write("Welcome to Silly Echo Server!\n")
		conn:write("Type 'help' for commands\n")
		while true do
			conn:write("> ")
			local line, err = conn:read("\n")
			if err then break end
			local cmd = line:match("^%s*(.-)%s*$") -- Trim whitespace (telnet sends \r\n)
			if cmd == "help" then
				conn:write("Command list:\n")
				conn:write(" help - Show this help\n")
				conn:write(" time - Show server time\n")
				conn:write(" quit - Disconnect\n")
			elseif cmd == "time" then
				conn:write(os.date() .. "\n")
			elseif cmd == "quit" then
				conn:write("Goodbye!\n")
				break
			else
				conn:write("Echo: " .. line)
			end
		end
		conn:close()
	end
}
print(string.format("Listening on %s", listener.addr))
