-- The request path's one round trip: reserve caps and append events (reserve.lua), and move the device's
-- presence (presence.lua) in the same call, each with its own keys and arguments.
--
-- KEYS    reserve's keys, then presence's two
-- ARGV[1] how many of KEYS are reserve's; ARGV[2] how many arguments are reserve's; then reserve's arguments,
--         then presence's
-- Returns { served, blocked, skipped, transitions (flat, as move_presence gives them) }.
local function slice(list, first, last)
  local part = {}
  for i = first, last do
    part[#part + 1] = list[i]
  end
  return part
end
local reserve_keys, reserve_args = tonumber(ARGV[1]), tonumber(ARGV[2])
local decided = reserve(slice(KEYS, 1, reserve_keys), slice(ARGV, 3, 2 + reserve_args))
local moved = move_presence(slice(KEYS, reserve_keys + 1, #KEYS), slice(ARGV, 3 + reserve_args, #ARGV))
return { decided[1], decided[2], decided[3], moved[3] }
