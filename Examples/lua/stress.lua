-- Extension 5: the stress-test client, corrected. The tutorial's version times with os.time()
-- (whole seconds: a fast run divides by zero) and prints when the last-numbered client ends,
-- while others may still be running. This one uses a millisecond monotonic clock, reports once
-- every client has ended, and counts failures instead of hiding them.
-- Run: silly Examples/lua/stress.lua [ADDR] [CLIENTS] [MESSAGES]
local task = require "silly.task"
local time = require "silly.time"
local tcp = require "silly.net.tcp"

local addr = arg[1] or "127.0.0.1:9999"
local client_count = tonumber(arg[2]) or 100 -- concurrent clients
local msg_per_client = tonumber(arg[3]) or 100 -- messages per client

local start_time = time.monotonic()
local total_messages = 0
local failures = 0
local finished = 0

local function report()
	local elapsed = (time.monotonic() - start_time) / 1000
	print(string.format("Completed: %d messages, %d failures, elapsed %.3f seconds, %.2f msg/s",
		total_messages, failures, elapsed, total_messages / math.max(elapsed, 0.001)))
end

for i = 1, client_count do
	task.fork(function()
		local conn, err = tcp.connect(addr)
		if conn then
			for j = 1, msg_per_client do
				local ok, werr = conn:write("test message\n")
				local msg = ok and conn:read("\n")
				if msg == "test message\n" then
					total_messages = total_messages + 1
				else
					failures = failures + 1
					break
				end
			end
			conn:close()
		else
			print("Connect failed:", err)
			failures = failures + 1
		end
		finished = finished + 1
		if finished == client_count then
			report()
		end
	end)
end
