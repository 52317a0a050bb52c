-- Argo CD health check for winapp.dev WindowsApp (winapp-operator); see config/argocd/README.md.
-- Argo CD sets the global `obj`; the script returns hs = {status = ..., message = ...}.
-- Argo CD runs it in gopher-lua, a Lua 5.1 (no //, bitwise operators, integers, utf8 or
-- table.unpack). From argocd-cm it gets only the base, table and package libraries (no string,
-- math or os global), and any field may be missing, so every lookup goes through field().
-- config/argocd/argocd-cm-patch.yaml inlines this file byte for byte: keep the two in step.
local hs = {}
local function field(t, key)
  if type(t) == "table" then
    return t[key]
  end
  return nil
end
local function text(v)
  if type(v) == "string" and v ~= "" then
    return v
  end
  return nil
end
local function number(v)
  if type(v) == "number" then
    return v
  end
  return nil
end
local metadata = field(obj, "metadata")
local spec = field(obj, "spec")
local status = field(obj, "status")
local generation = number(field(metadata, "generation"))
-- The first condition of each type, by type.
local conditions = {}
local list = field(status, "conditions")
if type(list) == "table" then
  for _, c in ipairs(list) do
    local t = text(field(c, "type"))
    if t ~= nil and conditions[t] == nil then
      conditions[t] = c
    end
  end
end
local function is_true(t)
  return field(conditions[t], "status") == "True"
end
local function message(t)
  local c = conditions[t]
  return text(field(c, "message")) or text(field(c, "reason"))
end
-- A generation the operator has not observed yet: at the top level or in Ready.
local function unobserved()
  if type(status) ~= "table" then
    return true
  end
  if generation == nil then
    return false
  end
  local observed = number(field(status, "observedGeneration"))
  if observed == nil or observed < generation then
    return true
  end
  local ready = number(field(conditions["Ready"], "observedGeneration"))
  return ready ~= nil and ready < generation
end
if field(spec, "suspend") == true then
  hs.status = "Suspended"
  if field(conditions["Reconciling"], "reason") == "Suspended" then
    hs.message = message("Reconciling")
  end
  hs.message = hs.message or "spec.suspend is true: the operator leaves this app alone"
elseif unobserved() then
  hs.status = "Progressing"
  if generation ~= nil then
    hs.message = "waiting for the operator to observe generation " .. tostring(generation)
  else
    hs.message = "waiting for the operator to report status"
  end
elseif is_true("Stalled") then
  hs.status = "Degraded"
  hs.message = message("Stalled") or "stalled: the app cannot progress without a change"
elseif is_true("Ready") then
  hs.status = "Healthy"
  hs.message = message("Ready") or "ready"
else
  hs.status = "Progressing"
  if is_true("Reconciling") then
    hs.message = message("Reconciling")
  end
  hs.message = hs.message or message("Ready") or message("Reconciling") or "waiting for the app to become Ready"
end
return hs
