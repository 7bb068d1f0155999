-- bench/lua/post_body.lua: makes wrk send every request as a POST of one
-- file's bytes, with a Content-Type (bench/security.sh's body scenarios).
-- Usage: wrk ... -s bench/lua/post_body.lua URL -- BODY_FILE [CONTENT_TYPE]
-- The file is read once per wrk thread, in init, before any request: wrk
-- formats the request once after init and reuses it, so the body costs no
-- Lua work during the measurement. A missing file stops wrk rather than
-- letting it measure empty POSTs.

function init(args)
   local path = args[1]
   if not path then
      error("post_body.lua: usage: -- BODY_FILE [CONTENT_TYPE]")
   end
   local f = assert(io.open(path, "rb"))
   local data = f:read("*a")
   f:close()
   if #data == 0 then
      error("post_body.lua: " .. path .. " is empty")
   end
   wrk.method = "POST"
   wrk.body = data
   wrk.headers["Content-Type"] = args[2] or "application/json"
end
