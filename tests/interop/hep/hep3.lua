-- A HEP v3 dissector for Wireshark/tshark (Debian's 4.0 has none built in), written for
-- Switchboard's tests (Apache-2.0, like the project). It decodes the generic chunks of
-- sipcapture's HEP v3 spec and hands a SIP payload (type 1) to Wireshark's own SIP
-- dissector, an RTCP report as JSON (type 5) to its JSON dissector, so
-- `tshark -X lua_script:hep3.lua -d udp.port==P,hep3` shows sip.* and json.* fields.
--   tshark -X lua_script:hep3.lua -d udp.port==9060,hep3 -r capture.pcap -T fields -e hep3.correlation_id -e sip.Method
local hep = Proto("hep3", "HEP v3 (Homer Encapsulation Protocol)")

local f = {
  length = ProtoField.uint16("hep3.length", "Total length"),
  family = ProtoField.uint8("hep3.ip_family", "IP family"),
  ipproto = ProtoField.uint8("hep3.ip_proto", "IP protocol"),
  src_ip = ProtoField.ipv4("hep3.src_ip", "Source IPv4"),
  dst_ip = ProtoField.ipv4("hep3.dst_ip", "Destination IPv4"),
  src_ip6 = ProtoField.ipv6("hep3.src_ip6", "Source IPv6"),
  dst_ip6 = ProtoField.ipv6("hep3.dst_ip6", "Destination IPv6"),
  src_port = ProtoField.uint16("hep3.src_port", "Source port"),
  dst_port = ProtoField.uint16("hep3.dst_port", "Destination port"),
  ts_sec = ProtoField.uint32("hep3.ts_sec", "Timestamp (s)"),
  ts_usec = ProtoField.uint32("hep3.ts_usec", "Timestamp (us)"),
  proto_type = ProtoField.uint8("hep3.proto_type", "Payload type"),
  capture_id = ProtoField.uint32("hep3.capture_id", "Capture agent id"),
  auth_key = ProtoField.string("hep3.auth_key", "Auth key"),
  payload = ProtoField.bytes("hep3.payload", "Payload"),
  correlation_id = ProtoField.string("hep3.correlation_id", "Correlation id"),
  node_name = ProtoField.string("hep3.node_name", "Node name"),
  unknown = ProtoField.bytes("hep3.unknown", "Unknown chunk"),
}
hep.fields = { f.length, f.family, f.ipproto, f.src_ip, f.dst_ip, f.src_ip6, f.dst_ip6, f.src_port,
  f.dst_port, f.ts_sec, f.ts_usec, f.proto_type, f.capture_id, f.auth_key, f.payload,
  f.correlation_id, f.node_name, f.unknown }

local by_type = {
  [0x01] = f.family, [0x02] = f.ipproto, [0x03] = f.src_ip, [0x04] = f.dst_ip,
  [0x05] = f.src_ip6, [0x06] = f.dst_ip6, [0x07] = f.src_port, [0x08] = f.dst_port,
  [0x09] = f.ts_sec, [0x0a] = f.ts_usec, [0x0b] = f.proto_type, [0x0c] = f.capture_id,
  [0x0e] = f.auth_key, [0x0f] = f.payload, [0x11] = f.correlation_id, [0x13] = f.node_name,
}

function hep.dissector(buf, pinfo, tree)
  if buf:len() < 6 or buf(0, 4):string() ~= "HEP3" then return 0 end
  local total = buf(4, 2):uint()
  if total > buf:len() then return 0 end
  pinfo.cols.protocol = "HEP3"
  local t = tree:add(hep, buf(0, total))
  t:add(f.length, buf(4, 2))
  local i, ptype, payload = 6, nil, nil
  while i + 6 <= total do
    local vendor, ctype, clen = buf(i, 2):uint(), buf(i + 2, 2):uint(), buf(i + 4, 2):uint()
    if clen < 6 or i + clen > total then break end
    local value = buf(i + 6, clen - 6)
    local field = vendor == 0 and by_type[ctype] or f.unknown
    if clen > 6 then t:add(field, value) end
    if vendor == 0 and ctype == 0x0b then ptype = value:uint() end
    if vendor == 0 and ctype == 0x0f then payload = value end
    i = i + clen
  end
  if payload ~= nil and ptype == 1 then
    Dissector.get("sip"):call(payload:tvb(), pinfo, tree)
  elseif payload ~= nil and ptype == 5 then  -- an RTCP report as JSON (captagent's, Homer's QoS)
    Dissector.get("json"):call(payload:tvb(), pinfo, tree)
  end
  return total
end

DissectorTable.get("udp.port"):add_for_decode_as(hep)
