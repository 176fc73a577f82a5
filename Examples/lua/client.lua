-- The tutorial's separate client: one line, its echo, done (the process then exits by itself).
-- Run: silly Examples/lua/client.lua [ADDR]
local silly = require "silly"
local task = require "silly.task"
local tcp = require "silly.net.tcp"

local addr = arg[1] or "127.0.0.1:9999"

task.fork(function()
	local conn, err = tcp.connect(addr)
	if not conn then
		print("Connect failed:", err)
		return
	end
	print("Connected to server:", conn.remoteaddr)
	conn:write("Hello from client\n")
	local msg, rerr = conn:read("\n")
	if msg then
		print("Received echo:", msg)
	else
		print("Receive failed:", rerr)
	end
	conn:close()
end)
