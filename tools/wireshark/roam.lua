-- Wireshark / tshark dissector for the roam session protocol, version 1 (docs/PROTOCOL.md).
--
-- Load it:   wireshark -X lua_script:tools/wireshark/roam.lua
--            tshark -r cap.pcap -X lua_script:tools/wireshark/roam.lua -d tcp.port==7000,roam -V
-- or copy it to ~/.local/lib/wireshark/plugins/. It registers on the TCP port set in the
-- preferences (Protocols → ROAM, default 7000) and as a heuristic dissector that recognises a
-- connection by its "ROAM" preamble (any port; enable "roam_tcp" under Analyze → Enabled
-- Protocols if your build starts heuristics disabled). `-d tcp.port==P,roam` forces it on port P.
--
-- MSOCKS (`roam socks` → `roam proxy`): such a connection starts with the SOCKS5 method selection
-- offering roam's private method 0x80 (client: 05 N METHODS, proxy: 05 80) and then carries
-- exactly a roam connection (docs/PROTOCOL.md §MSOCKS). The dissector shows the method selection
-- and decodes the rest as roam; the heuristic recognises a greeting that offers 0x80 (followed by
-- nothing or by the preamble). On a port another dissector owns (SOCKS on 1080), use
-- `-d tcp.port==1080,roam`. A plain SOCKS5 connection (no 0x80) is left to Wireshark's SOCKS
-- dissector.
--
-- What it shows: the preamble (magic, version), every frame by name with its fields (HELLO,
-- HELLO_REPLY, FINISH, SERVER_KEY, MIGRATE, CHALLENGE, RESPONSE, ACCEPT, STALE, REFUSED, DATA, ACK,
-- FIN, CLOSE, SEALED), several frames per TCP segment and frames reassembled across segments. An
-- unknown frame type is shown as type + length and skipped, never an error. DATA frames carry no
-- offset on the wire; the dissector computes each one's stream offset ("roam.data.offset") from the
-- start of the path: 0 on a session's first connection, and on a migrated path the `received`
-- offset of the RESPONSE (server → client) or ACCEPT (client → server) that adopted it. SEALED
-- frames (the encrypt feature) are shown as encrypted frames: inner type, inner payload length,
-- ciphertext and tag ("roam.sealed.*"); an inner DATA still advances the offset (the ciphertext
-- is as long as the plaintext). Payloads are not decrypted.
--
-- Not covered: a capture that starts mid-connection cannot find frame boundaries.

local roam = Proto("roam", "roam session protocol")

-- --- preferences ---------------------------------------------------------------------------
roam.prefs.port = Pref.uint("TCP port", 7000, "TCP port of roam servers (roam server --listen)")

-- --- constants from docs/PROTOCOL.md ------------------------------------------------------------
local MAGIC = "ROAM"
local PREAMBLE_LEN = 8
local HEADER_LEN = 4

local frame_names = {
  [0x01] = "HELLO", [0x02] = "HELLO_REPLY", [0x03] = "FINISH", [0x04] = "SERVER_KEY",
  [0x10] = "MIGRATE", [0x11] = "CHALLENGE", [0x12] = "RESPONSE", [0x13] = "ACCEPT",
  [0x14] = "STALE", [0x15] = "REFUSED",
  [0x20] = "DATA", [0x21] = "ACK", [0x22] = "FIN", [0x24] = "CLOSE",
  [0x30] = "SEALED",
}

local socks_methods = {
  [0x00] = "no authentication", [0x02] = "username/password", [0x80] = "roam (MSOCKS)",
  [0xff] = "no acceptable method",
}
local SOCKS_VERSION = 0x05  -- not a roam frame type, so it cannot be mistaken for a frame header
local METHOD_ROAM = 0x80

local errc_names = {
  [1] = "need-more", [2] = "malformed", [3] = "not-roam", [4] = "version", [5] = "bad-mac",
  [6] = "crypto", [7] = "protocol", [8] = "refused", [9] = "timeout", [10] = "aborted",
  [11] = "retention-lost", [12] = "limit",
}

-- --- fields ------------------------------------------------------------------------------------
local f = {
  preamble = ProtoField.none("roam.preamble", "Preamble"),
  magic = ProtoField.string("roam.magic", "Magic"),
  version = ProtoField.uint8("roam.version", "Version"),
  reserved = ProtoField.uint24("roam.reserved", "Reserved", base.HEX),

  frame = ProtoField.none("roam.frame", "Frame"),
  type = ProtoField.uint8("roam.type", "Type", base.HEX, frame_names),
  length = ProtoField.uint24("roam.length", "Length"),
  unknown = ProtoField.bytes("roam.unknown", "Unknown payload"),

  features = ProtoField.uint32("roam.features", "Features", base.HEX),
  feat_resume = ProtoField.bool("roam.features.resume", "resume", 32, nil, 0x1),
  feat_encrypt = ProtoField.bool("roam.features.encrypt", "encrypt", 32, nil, 0x2),
  feat_server_key = ProtoField.bool("roam.features.server_key", "server-key", 32, nil, 0x4),
  feat_aes256gcm = ProtoField.bool("roam.features.aes256gcm", "aes256gcm", 32, nil, 0x8),
  buffer_cap = ProtoField.uint64("roam.buffer_cap", "Buffer cap (bytes)"),
  wait_ms = ProtoField.uint64("roam.wait_ms", "MIGRATE_WAIT (ms)"),
  random = ProtoField.bytes("roam.random", "Random"),
  public_key = ProtoField.bytes("roam.public_key", "X25519 public key"),
  server_key = ProtoField.bytes("roam.server_key", "Ed25519 server key"),
  signature = ProtoField.bytes("roam.signature", "Ed25519 signature"),
  mac = ProtoField.bytes("roam.mac", "MAC (HMAC-SHA-512-256)"),

  token = ProtoField.bytes("roam.token", "Token"),
  request = ProtoField.uint64("roam.request", "Request number"),
  received = ProtoField.uint64("roam.received", "Received offset"),
  nonce = ProtoField.bytes("roam.nonce", "Nonce"),
  newest = ProtoField.uint64("roam.newest", "Newest adopted request"),

  data_offset = ProtoField.uint64("roam.data.offset", "Stream offset"),
  data_length = ProtoField.uint32("roam.data.length", "Data length"),
  data = ProtoField.bytes("roam.data", "Data"),
  consumed = ProtoField.uint64("roam.consumed", "Consumed offset"),
  fin_offset = ProtoField.uint64("roam.fin_offset", "End-of-stream offset"),
  close_code = ProtoField.uint16("roam.close.code", "Close code", base.DEC, errc_names),
  close_reason = ProtoField.string("roam.close.reason", "Close reason"),

  socks = ProtoField.none("roam.socks", "SOCKS5 method selection (MSOCKS)"),
  socks_version = ProtoField.uint8("roam.socks.version", "SOCKS version"),
  socks_nmethods = ProtoField.uint8("roam.socks.nmethods", "Number of methods"),
  socks_method = ProtoField.uint8("roam.socks.method", "Method offered", base.HEX, socks_methods),
  socks_chosen = ProtoField.uint8("roam.socks.chosen", "Method chosen", base.HEX, socks_methods),

  inner_type = ProtoField.uint8("roam.sealed.inner_type", "Inner type", base.HEX, frame_names),
  inner_length = ProtoField.uint32("roam.sealed.length", "Inner payload length"),
  ciphertext = ProtoField.bytes("roam.sealed.ciphertext", "Ciphertext"),
  tag = ProtoField.bytes("roam.sealed.tag", "Tag (AEAD)"),
}
local field_list = {}
for _, v in pairs(f) do field_list[#field_list + 1] = v end
roam.fields = field_list

local ef_size = ProtoExpert.new("roam.size", "Payload size does not match the frame type",
                                expert.group.MALFORMED, expert.severity.WARN)
local ef_unknown = ProtoExpert.new("roam.unknown_type", "Unknown frame type (skipped)",
                                   expert.group.UNDECODED, expert.severity.NOTE)
local ef_magic = ProtoExpert.new("roam.bad_preamble", "Preamble: unexpected version or reserved bytes",
                                 expert.group.PROTOCOL, expert.severity.WARN)
local ef_socks = ProtoExpert.new("roam.socks.not_roam",
                                 "The proxy did not choose roam's method 0x80: not roam",
                                 expert.group.PROTOCOL, expert.severity.NOTE)
roam.experts = { ef_size, ef_unknown, ef_magic, ef_socks }

local tcp_stream = Field.new("tcp.stream")

-- --- per-connection state -------------------------------------------------------------------
-- Computed on the first pass in packet order and remembered per packet, so that re-dissection in
-- any order (the GUI) shows the same offsets.
--   streams[tcp.stream] = { client = "addr:port", next = { c2s = n, s2c = n },
--                           pos = { c2s = n, s2c = n } (bytes of each direction consumed so far) }
--   offsets[packet .. ":" .. frame index] = stream offset of that DATA frame
--   socks_at[packet] = true: this packet's dissection starts at the first byte of its direction
--                      with the SOCKS5 method selection of an MSOCKS connection
local streams = {}
local offsets = {}
local socks_at = {}
-- TCP may call the dissector several times for one packet (a reassembled PDU, then the rest of
-- the segment): frames are numbered per packet across those calls, and the Info column gathers
-- them all.
local cur_pkt, cur_index, cur_visited = -1, 0, false
local cur_info = false  -- this packet's Info column already names roam frames

function roam.init()
  streams = {}
  offsets = {}
  socks_at = {}
  cur_pkt, cur_index, cur_info = -1, 0, false
end

local function endpoint(addr, port) return tostring(addr) .. ":" .. tostring(port) end

local function conn_state(pinfo)
  local fi = tcp_stream()
  local key = fi and fi.value or endpoint(pinfo.src, pinfo.src_port) .. endpoint(pinfo.dst, pinfo.dst_port)
  local st = streams[key]
  if not st then
    st = { client = nil, next = { c2s = UInt64(0), s2c = UInt64(0) }, pos = { c2s = 0, s2c = 0 } }
    streams[key] = st
  end
  return st
end

local function direction(st, pinfo)
  if st.client == nil then
    -- The client speaks first; failing that, the server is whoever uses the configured port.
    if pinfo.dst_port == roam.prefs.port then st.client = endpoint(pinfo.src, pinfo.src_port)
    elseif pinfo.src_port == roam.prefs.port then st.client = endpoint(pinfo.dst, pinfo.dst_port)
    else st.client = endpoint(pinfo.src, pinfo.src_port) end
  end
  return endpoint(pinfo.src, pinfo.src_port) == st.client and "c2s" or "s2c"
end

-- --- frame bodies ----------------------------------------------------------------------------
-- Each takes (payload tvb range, subtree, ctx) and returns a short text for the Info column.
local fixed_size = {
  [0x01] = 84, [0x02] = 116, [0x03] = 32, [0x04] = 96, [0x10] = 64, [0x11] = 56, [0x12] = 48,
  [0x13] = 48, [0x14] = 48, [0x15] = 16, [0x21] = 8, [0x22] = 8,
}

local function add_features(t, r)
  local ft = t:add(f.features, r)
  ft:add(f.feat_resume, r)
  ft:add(f.feat_encrypt, r)
  ft:add(f.feat_server_key, r)
  ft:add(f.feat_aes256gcm, r)
end

local function hello_common(p, t)
  add_features(t, p(0, 4))
  t:add(f.buffer_cap, p(4, 8))
  t:add(f.wait_ms, p(12, 8))
  t:add(f.random, p(20, 32))
  t:add(f.public_key, p(52, 32))
  return string.format("features=0x%x cap=%s wait=%sms", p(0, 4):uint(), tostring(p(4, 8):uint64()),
                       tostring(p(12, 8):uint64()))
end

-- The offset of the next DATA byte this direction sends on this path, and bookkeeping for it.
local function data_offset(ctx, n)
  local key = ctx.pkt .. ":" .. ctx.index
  if not ctx.visited then
    offsets[key] = ctx.st.next[ctx.dir]
    ctx.st.next[ctx.dir] = ctx.st.next[ctx.dir] + n
  end
  return offsets[key]
end

-- A RESPONSE/ACCEPT fixes where the peer's DATA on this path starts.
local function set_resume(ctx, which, value)
  if not ctx.visited then ctx.st.next[which] = value end
end

local bodies = {
  [0x01] = function(p, t) return hello_common(p, t) end,
  [0x02] = function(p, t)
    local s = hello_common(p, t)
    t:add(f.mac, p(84, 32))
    return s
  end,
  [0x03] = function(p, t) t:add(f.mac, p(0, 32)) return "" end,
  [0x04] = function(p, t)
    t:add(f.server_key, p(0, 32))
    t:add(f.signature, p(32, 64))
    return ""
  end,
  [0x10] = function(p, t)
    t:add(f.token, p(0, 16))
    t:add(f.request, p(16, 8))
    t:add(f.received, p(24, 8))
    t:add(f.mac, p(32, 32))
    return "token=" .. p(0, 16):bytes():tohex():lower() .. " request=" .. tostring(p(16, 8):uint64()) ..
           " received=" .. tostring(p(24, 8):uint64())
  end,
  [0x11] = function(p, t)
    t:add(f.request, p(0, 8))
    t:add(f.nonce, p(8, 16))
    t:add(f.mac, p(24, 32))
    return "request=" .. tostring(p(0, 8):uint64())
  end,
  [0x12] = function(p, t, ctx)  -- RESPONSE: where the client holds the s2c stream
    t:add(f.request, p(0, 8))
    t:add(f.received, p(8, 8))
    t:add(f.mac, p(16, 32))
    set_resume(ctx, "s2c", p(8, 8):uint64())
    return "request=" .. tostring(p(0, 8):uint64()) .. " received=" .. tostring(p(8, 8):uint64())
  end,
  [0x13] = function(p, t, ctx)  -- ACCEPT: where the server holds the c2s stream
    t:add(f.request, p(0, 8))
    t:add(f.received, p(8, 8))
    t:add(f.mac, p(16, 32))
    set_resume(ctx, "c2s", p(8, 8):uint64())
    return "request=" .. tostring(p(0, 8):uint64()) .. " received=" .. tostring(p(8, 8):uint64())
  end,
  [0x14] = function(p, t)
    t:add(f.request, p(0, 8))
    t:add(f.newest, p(8, 8))
    t:add(f.mac, p(16, 32))
    return "request=" .. tostring(p(0, 8):uint64()) .. " newest=" .. tostring(p(8, 8):uint64())
  end,
  [0x15] = function(p, t)
    t:add(f.request, p(0, 8))
    t:add(f.reserved, p(8, 8))
    return "request=" .. tostring(p(0, 8):uint64())
  end,
  [0x20] = function(p, t, ctx)
    local n = p:len()
    local off = data_offset(ctx, n)
    if off then t:add(f.data_offset, p(0, 0), off):set_generated() end
    t:add(f.data_length, p(0, 0), n):set_generated()
    t:add(f.data, p)
    return "offset=" .. tostring(off) .. " len=" .. n
  end,
  [0x21] = function(p, t)
    t:add(f.consumed, p(0, 8))
    return "consumed=" .. tostring(p(0, 8):uint64())
  end,
  [0x22] = function(p, t)
    t:add(f.fin_offset, p(0, 8))
    return "offset=" .. tostring(p(0, 8):uint64())
  end,
  [0x24] = function(p, t)
    local code = p(0, 2):uint()
    t:add(f.close_code, p(0, 2))
    local reason = ""
    if p:len() > 2 then
      t:add(f.close_reason, p(2, p:len() - 2))
      reason = p(2, p:len() - 2):string()
    end
    return (errc_names[code] or tostring(code)) .. (reason ~= "" and (" \"" .. reason .. "\"") or "")
  end,
  [0x30] = function(p, t, ctx)  -- an encrypted frame: inner type in clear, payload sealed
    local inner = p(0, 1):uint()
    local n = p:len() - 17
    t:add(f.inner_type, p(0, 1))
    t:add(f.inner_length, p(1, n), n):set_generated()
    t:add(f.ciphertext, p(1, n))
    t:add(f.tag, p(p:len() - 16, 16))
    local name = "encrypted " .. (frame_names[inner] or string.format("0x%02x", inner))
    if inner == 0x20 then
      local off = data_offset(ctx, n)
      if off then t:add(f.data_offset, p(0, 0), off):set_generated() end
      t:add(f.data_length, p(0, 0), n):set_generated()
      return name .. " offset=" .. tostring(off) .. " len=" .. n
    end
    return name .. " len=" .. n
  end,
}

-- --- the dissector -----------------------------------------------------------------------------
local function dissect_preamble(tvb, off, tree)
  local r = tvb(off, PREAMBLE_LEN)
  local t = tree:add(f.preamble, r)
  t:add(f.magic, tvb(off, 4))
  t:add(f.version, tvb(off + 4, 1))
  t:add(f.reserved, tvb(off + 5, 3))
  t:append_text(string.format(": %s version %d", tvb(off, 4):string(), tvb(off + 4, 1):uint()))
  if tvb(off + 4, 1):uint() ~= 1 or tvb(off + 5, 3):uint() ~= 0 then t:add_proto_expert_info(ef_magic) end
end

-- The SOCKS5 method selection in front of an MSOCKS connection: the client's greeting
-- (05 N METHODS) or the proxy's choice (05 M). Returns its length, or nil and the length needed
-- when the bytes are not all there yet; `roam` is false when the proxy chose another method.
local function socks_length(tvb, off, rest, dir)
  if dir == "s2c" then return 2 end
  if rest < 2 then return nil end
  return 2 + tvb(off + 1, 1):uint()
end

local function dissect_socks(tvb, off, n, tree, dir)
  local t = tree:add(f.socks, tvb(off, n))
  t:add(f.socks_version, tvb(off, 1))
  if dir == "s2c" then
    local m = tvb(off + 1, 1):uint()
    t:add(f.socks_chosen, tvb(off + 1, 1))
    t:append_text(string.format(": proxy chose 0x%02x", m))
    if m ~= METHOD_ROAM then t:add_proto_expert_info(ef_socks) end
    return string.format("SOCKS5(chosen 0x%02x)", m), m == METHOD_ROAM
  end
  t:add(f.socks_nmethods, tvb(off + 1, 1))
  local list = {}
  for i = 2, n - 1 do
    t:add(f.socks_method, tvb(off + i, 1))
    list[#list + 1] = string.format("0x%02x", tvb(off + i, 1):uint())
  end
  t:append_text(": client offers " .. table.concat(list, " "))
  return "SOCKS5(methods " .. table.concat(list, " ") .. ")", true
end

local function dissect_frame(tvb, off, total, tree, ctx)
  local ftype = tvb(off, 1):uint()
  local plen = total - HEADER_LEN
  local name = frame_names[ftype]
  local t = tree:add(f.frame, tvb(off, total))
  t:append_text(": " .. (name or string.format("unknown 0x%02x", ftype)))
  t:add(f.type, tvb(off, 1))
  t:add(f.length, tvb(off + 1, 3))
  local p = plen > 0 and tvb(off + HEADER_LEN, plen) or nil
  local body = bodies[ftype]
  local info = ""
  if not body then
    t:add_proto_expert_info(ef_unknown)
    if p then t:add(f.unknown, p) end
    return string.format("0x%02x(len=%d)", ftype, plen)
  end
  local want = fixed_size[ftype]
  if (want and plen ~= want) or (not want and plen == 0) or (ftype == 0x24 and plen < 2)
     or (ftype == 0x30 and plen < 17) then
    t:add_proto_expert_info(ef_size)
    if p then t:add(f.unknown, p) end
    return name .. "(bad size)"
  end
  info = body(p, t, ctx)
  if info ~= "" then t:append_text(" " .. info) end
  return name .. (info ~= "" and ("(" .. info .. ")") or "")
end

function roam.dissector(tvb, pinfo, tree)
  local len = tvb:len()
  local off = 0
  local names = {}
  local root = nil
  local st = conn_state(pinfo)
  local first_call = pinfo.number ~= cur_pkt or pinfo.visited ~= cur_visited
  if first_call then
    cur_pkt, cur_index, cur_visited, cur_info = pinfo.number, 0, pinfo.visited, false
  end
  local ctx = { st = st, dir = direction(st, pinfo), pkt = pinfo.number, index = cur_index,
                visited = pinfo.visited }
  local start_pos = st.pos[ctx.dir]
  local call_index = cur_index
  while off < len do
    local rest = len - off
    -- The first byte of a direction, 0x05 (no frame type): MSOCKS's SOCKS5 method selection.
    local at_start
    if pinfo.visited then at_start = off == 0 and call_index == 0 and socks_at[pinfo.number]
    else at_start = start_pos + off == 0 end
    if at_start and tvb(off, 1):uint() == SOCKS_VERSION then
      if not pinfo.visited then socks_at[pinfo.number] = true end
      local n = socks_length(tvb, off, rest, ctx.dir)
      if n == nil or rest < n then
        pinfo.desegment_offset = off
        pinfo.desegment_len = n and (n - rest) or DESEGMENT_ONE_MORE_SEGMENT
        break
      end
      root = root or tree:add(roam, tvb(off))
      local text, is_roam = dissect_socks(tvb, off, n, root, ctx.dir)
      names[#names + 1] = text
      off = off + n
      if not is_roam then off = len end  -- the proxy refused roam: what follows is not roam
    elseif tvb(off, 1):uint() == 0x52 then  -- 'R': a preamble (no frame type is 0x52)
      if rest < PREAMBLE_LEN then
        pinfo.desegment_offset = off
        pinfo.desegment_len = PREAMBLE_LEN - rest
        break
      end
      if tvb(off, 4):string() ~= MAGIC then return 0 end  -- not roam after all
      root = root or tree:add(roam, tvb(off))
      dissect_preamble(tvb, off, root)
      names[#names + 1] = "PREAMBLE"
      off = off + PREAMBLE_LEN
    else
      if rest < HEADER_LEN then
        pinfo.desegment_offset = off
        pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
        break
      end
      local total = HEADER_LEN + tvb(off + 1, 3):uint()
      if rest < total then
        pinfo.desegment_offset = off
        pinfo.desegment_len = total - rest
        break
      end
      root = root or tree:add(roam, tvb(off))
      ctx.index = ctx.index + 1
      names[#names + 1] = dissect_frame(tvb, off, total, root, ctx)
      off = off + total
    end
  end
  cur_index = ctx.index
  if not pinfo.visited then st.pos[ctx.dir] = start_pos + off end
  if #names > 0 then
    pinfo.cols.protocol = "ROAM"
    local text = table.concat(names, ", ")
    if not cur_info then
      pinfo.cols.info = (ctx.dir == "c2s" and "C→S " or "S→C ") .. text
      cur_info = true
    else
      pinfo.cols.info:append(", " .. text)
    end
  end
  return len
end

-- --- registration ------------------------------------------------------------------------------
local tcp_port_table = DissectorTable.get("tcp.port")
local registered_port = nil

local function register_port()
  if registered_port then tcp_port_table:remove(registered_port, roam) end
  registered_port = roam.prefs.port
  if registered_port ~= 0 then tcp_port_table:add(registered_port, roam) end
end

function roam.prefs_changed() register_port() end
register_port()

-- An MSOCKS client's first bytes: a SOCKS5 greeting that offers 0x80, followed by nothing yet or
-- by the roam preamble (roam socks sends it without waiting for the proxy's choice).
local function msocks_greeting(tvb)
  local len = tvb:len()
  if len < 3 or tvb(0, 1):uint() ~= SOCKS_VERSION then return false end
  local n = tvb(1, 1):uint()
  if n == 0 or len < 2 + n then return false end
  local offered = false
  for i = 2, n + 1 do offered = offered or tvb(i, 1):uint() == METHOD_ROAM end
  if not offered then return false end
  local after = 2 + n
  return len == after or (len >= after + 4 and tvb(after, 4):string() == MAGIC)
end

-- Heuristic: a TCP payload that starts with the preamble "ROAM" 0x01 0 0 0, or with an MSOCKS
-- greeting, is roam; the rest of that connection is handed to this dissector too.
local function heuristic(tvb, pinfo, tree)
  if msocks_greeting(tvb) then
    pinfo.conversation = roam
    roam.dissector(tvb, pinfo, tree)
    return true
  end
  if tvb:len() < PREAMBLE_LEN then return false end
  if tvb(0, 4):string() ~= MAGIC or tvb(4, 1):uint() ~= 1 then return false end
  pinfo.conversation = roam
  roam.dissector(tvb, pinfo, tree)
  return true
end
roam:register_heuristic("tcp", heuristic)
