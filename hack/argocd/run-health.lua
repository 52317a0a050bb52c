-- Runs an Argo CD resource health script outside Argo CD, for tests and by hand.
--
--   lua5.4 hack/argocd/run-health.lua config/argocd/health.lua < object.json
--     decodes one Kubernetes object (JSON) from stdin, runs the script with it as the global
--     `obj`, as Argo CD does, and prints STATUS<TAB>MESSAGE. Exit 0; 2 on bad input or usage;
--     1 when the script fails or returns something Argo CD would reject.
--
--   lua5.4 hack/argocd/run-health.lua --check-cm config/argocd/health.lua config/argocd/argocd-cm-patch.yaml
--     checks that the patch inlines the script byte for byte (its block under
--     resource.customizations.health.winapp.dev_WindowsApp). Exit 0 when equal, 1 otherwise.
--
-- The script runs in an environment like the one Argo CD gives argocd-cm scripts: the base
-- functions and the table library, no string, math, io or os. Decoding follows Argo CD's: JSON
-- null is nil (an absent key; left out of arrays, which close up), whole numbers are Lua integers
-- (gopher-lua prints a generation as 3, not 3.0).

local CM_KEY = "resource.customizations.health.winapp.dev_WindowsApp"
local VALID = { Healthy = true, Progressing = true, Degraded = true, Suspended = true, Missing = true, Unknown = true }

local function die(code, fmt, ...)
  io.stderr:write("run-health: ", string.format(fmt, ...), "\n")
  os.exit(code)
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then
    die(2, "%s", err)
  end
  local s = f:read("a")
  f:close()
  return s
end

-- A minimal, strict JSON decoder (RFC 8259): objects, arrays, strings with every escape
-- (\uXXXX with surrogate pairs, to UTF-8), numbers, true, false, null.
local json = {}
do
  local escapes = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

  local function fail(s, i, what)
    local line, col = 1, 1
    for k = 1, math.min(i, #s + 1) - 1 do
      if s:sub(k, k) == "\n" then
        line, col = line + 1, 1
      else
        col = col + 1
      end
    end
    error({ json = true, msg = string.format("invalid JSON at line %d column %d: %s", line, col, what) }, 0)
  end

  local function skip(s, i)
    return s:find("[^ \t\r\n]", i) or #s + 1
  end

  local value

  local function str(s, i) -- s:sub(i, i) == '"'
    local out, j = {}, i + 1
    while true do
      local k = s:find('[%z\1-\31"\\]', j)
      if not k then
        fail(s, i, "unterminated string")
      end
      out[#out + 1] = s:sub(j, k - 1)
      local c = s:sub(k, k)
      if c == '"' then
        return table.concat(out), k + 1
      elseif c == "\\" then
        local e = s:sub(k + 1, k + 1)
        if escapes[e] then
          out[#out + 1] = escapes[e]
          j = k + 2
        elseif e == "u" then
          local hex = s:match("^%x%x%x%x", k + 2)
          if not hex then
            fail(s, k, "bad \\u escape")
          end
          local cp = tonumber(hex, 16)
          j = k + 6
          if cp >= 0xD800 and cp <= 0xDFFF then
            -- A surrogate pair is one code point; a lone surrogate becomes U+FFFD, as in Go.
            local lo = s:match("^\\u([dD][c-fC-F]%x%x)", j)
            if cp <= 0xDBFF and lo then
              cp = 0x10000 + ((cp - 0xD800) << 10) + (tonumber(lo, 16) - 0xDC00)
              j = j + 6
            else
              cp = 0xFFFD
            end
          end
          out[#out + 1] = utf8.char(cp)
        else
          fail(s, k, "bad escape \\" .. e)
        end
      else
        fail(s, k, "control character in string")
      end
    end
  end

  local function num(s, i)
    local j = i
    if s:sub(j, j) == "-" then
      j = j + 1
    end
    if s:sub(j, j) == "0" then
      j = j + 1
    elseif s:match("^[1-9]", j) then
      j = s:find("%D", j) or #s + 1
    else
      fail(s, i, "bad number")
    end
    local whole = true
    if s:sub(j, j) == "." then
      j = s:match("^%.%d+()", j) or fail(s, i, "bad number")
      whole = false
    end
    if s:match("^[eE]", j) then
      j = s:match("^[eE][-+]?%d+()", j) or fail(s, i, "bad number")
      whole = false
    end
    local lit = s:sub(i, j - 1)
    -- Lua integers where exact; beyond 64 bits (tointeger gives nil), and with . or e, floats.
    return whole and math.tointeger(tonumber(lit)) or tonumber(lit), j
  end

  local literals = { t = { "true", true }, f = { "false", false }, n = { "null", nil } }

  function value(s, i, depth)
    if depth > 512 then
      fail(s, i, "nested too deeply")
    end
    i = skip(s, i)
    local c = s:sub(i, i)
    if c == "{" then
      local obj = {}
      i = skip(s, i + 1)
      if s:sub(i, i) == "}" then
        return obj, i + 1
      end
      while true do
        if s:sub(i, i) ~= '"' then
          fail(s, i, "expected a string key")
        end
        local key
        key, i = str(s, i)
        i = skip(s, i)
        if s:sub(i, i) ~= ":" then
          fail(s, i, "expected ':'")
        end
        obj[key], i = value(s, i + 1, depth + 1)
        i = skip(s, i)
        c = s:sub(i, i)
        if c == "}" then
          return obj, i + 1
        elseif c ~= "," then
          fail(s, i, "expected ',' or '}'")
        end
        i = skip(s, i + 1)
      end
    elseif c == "[" then
      local arr, n = {}, 0
      i = skip(s, i + 1)
      if s:sub(i, i) == "]" then
        return arr, i + 1
      end
      while true do
        local v
        v, i = value(s, i, depth + 1)
        if v ~= nil then -- Argo CD's decodeValue drops nulls from arrays (gopher-lua's Append skips nil)
          n = n + 1
          arr[n] = v
        end
        i = skip(s, i)
        c = s:sub(i, i)
        if c == "]" then
          return arr, i + 1
        elseif c ~= "," then
          fail(s, i, "expected ',' or ']'")
        end
        i = i + 1
      end
    elseif c == '"' then
      return str(s, i)
    elseif c == "-" or c:match("%d") then
      return num(s, i)
    elseif literals[c] then
      local word, v = literals[c][1], literals[c][2]
      if s:sub(i, i + #word - 1) ~= word then
        fail(s, i, "unexpected '" .. c .. "'")
      end
      return v, i + #word
    elseif c == "" then
      fail(s, i, "unexpected end of input")
    end
    fail(s, i, "unexpected '" .. c .. "'")
  end

  -- Returns the value, or nil and a message.
  function json.decode(s)
    local ok, v = pcall(function()
      local v, i = value(s, 1, 0)
      i = skip(s, i)
      if i <= #s then
        fail(s, i, "trailing characters")
      end
      return v
    end)
    if not ok then
      if type(v) == "table" and v.json then
        return nil, v.msg
      end
      error(v, 0)
    end
    return v
  end
end

-- The block scalar under CM_KEY in a YAML file: its lines with the block's indentation removed,
-- "\n"-joined, one final newline (YAML's default "clip" chomping of `|`).
local function cm_block(yaml, key)
  local lines = {}
  for line in (yaml:gsub("\r\n", "\n") .. (yaml:sub(-1) == "\n" and "" or "\n")):gmatch("(.-)\n") do
    lines[#lines + 1] = line
  end
  local start, key_indent
  for n, line in ipairs(lines) do
    local ind = line:match("^( *)" .. key:gsub("%p", "%%%0") .. ": *|[-+]?%s*$")
    if ind then
      start, key_indent = n, #ind
      break
    end
  end
  if not start then
    return nil, "no `" .. key .. ": |` block"
  end
  local body, indent = {}, nil
  for n = start + 1, #lines do
    local line = lines[n]
    if line:match("^%s*$") then
      body[#body + 1] = ""
    else
      local ind = #line:match("^ *")
      indent = indent or ind
      if ind <= key_indent or ind < indent then
        break
      end
      body[#body + 1] = line:sub(indent + 1)
    end
  end
  while #body > 0 and body[#body] == "" do
    body[#body] = nil
  end
  if #body == 0 then
    return nil, "the block under `" .. key .. "` is empty"
  end
  return table.concat(body, "\n") .. "\n"
end

local function check_cm(script_path, yaml_path)
  local script = read_file(script_path)
  local block, err = cm_block(read_file(yaml_path), CM_KEY)
  if not block then
    die(1, "%s: %s", yaml_path, err)
  end
  if block == script then
    print("OK\t" .. yaml_path .. " inlines " .. script_path .. " byte for byte")
    os.exit(0)
  end
  local a, b, n = {}, {}, 0
  for l in script:gmatch("([^\n]*)\n?") do a[#a + 1] = l end
  for l in block:gmatch("([^\n]*)\n?") do b[#b + 1] = l end
  repeat
    n = n + 1
  until a[n] ~= b[n] or n > math.max(#a, #b)
  die(1, "%s differs from %s at script line %d:\n  script: %s\n  yaml:   %s", yaml_path, script_path, n,
    tostring(a[n]), tostring(b[n]))
end

local function run(script_path)
  local src = read_file(script_path)
  local input = io.read("a")
  local obj, err = json.decode(input)
  if err then
    die(2, "stdin: %s", err)
  end
  if type(obj) ~= "table" or input:match("^%s*%[") then
    die(2, "stdin: expected one JSON object, got %s", input:match("^%s*%[") and "an array" or type(obj))
  end
  -- Like Argo CD for argocd-cm scripts: base functions and table only.
  local env = { obj = obj, table = table, _VERSION = _VERSION }
  for _, name in ipairs({ "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "print",
    "rawequal", "rawget", "rawlen", "rawset", "select", "setmetatable", "tonumber", "tostring", "type", "xpcall" }) do
    env[name] = _G[name]
  end
  env._G = env
  local chunk, lerr = load(src, "@" .. script_path, "t", env)
  if not chunk then
    die(1, "%s", lerr)
  end
  local ok, hs = pcall(chunk)
  if not ok then
    die(1, "the script failed: %s", tostring(hs))
  end
  if type(hs) ~= "table" then
    die(1, "expect table output from Lua script, not %s", type(hs))
  end
  if not VALID[hs.status] then
    die(1, "invalid health status %s (Argo CD would show Unknown)", tostring(hs.status))
  end
  if hs.message ~= nil and type(hs.message) ~= "string" then
    die(1, "hs.message is a %s, not a string", type(hs.message))
  end
  print(hs.status .. "\t" .. (hs.message or ""))
end

if arg[1] == "--check-cm" and arg[2] and arg[3] and not arg[4] then
  check_cm(arg[2], arg[3])
elseif arg[1] and arg[1]:sub(1, 1) ~= "-" and not arg[2] then
  run(arg[1])
else
  die(2, "usage: lua5.4 %s HEALTH.lua < object.json\n       lua5.4 %s --check-cm HEALTH.lua ARGOCD-CM-PATCH.yaml",
    arg[0], arg[0])
end
