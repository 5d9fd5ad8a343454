-- Argo CD health check for licensing.scriptlock.com/Customer.
--
-- Install: argocd-cm key resource.customizations.health.licensing.scriptlock.com_Customer
-- (config/argocd/ is a kustomize Component that adds it; docs/operations.md).
-- Tested over every state the operator leaves a Customer in: test/health.
--
--   Suspended    licensing.scriptlock.com/paused: "true" (the operator does nothing)
--   Progressing  not reached yet, a spec generation not observed yet,
--                Reconciling (transient: APIError, RateLimited, Creating,
--                RemoteDeleted), or being deleted
--   Degraded     Stalled=True: a person must act (Conflict, NotFound,
--                Unauthorized, InvalidCredentials, AccountChanged,
--                StoredDifferently, InvalidID, a refused write, Differs under
--                managementPolicy: Observe, DeletionBlocked)
--   Healthy      Ready=True for the current generation (Available, Observed)
local hs = {}
local meta = obj.metadata or {}
local generation = meta.generation or 0
local deleting = meta.deletionTimestamp ~= nil

local function describe(c)
  return (c.reason or "") .. ": " .. (c.message or "")
end

if meta.annotations ~= nil and meta.annotations["licensing.scriptlock.com/paused"] == "true" then
  hs.status = "Suspended"
  hs.message = "Paused by the annotation licensing.scriptlock.com/paused: the operator makes no ScriptLock call and changes nothing until it is removed"
  if deleting then
    hs.message = hs.message .. "; the deletion waits for that"
  end
  return hs
end

local st = obj.status or {}
local ready, stalled
for _, c in ipairs(st.conditions or {}) do
  if c.type == "Ready" then ready = c end
  if c.type == "Stalled" and c.status == "True" then stalled = c end
end

if deleting then
  -- Deleting bumps the generation; the operator's conditions carry the
  -- generation they describe.
  if stalled ~= nil and (stalled.observedGeneration or 0) >= generation then
    hs.status = "Degraded"
    hs.message = "Deletion blocked: " .. describe(stalled)
    return hs
  end
  hs.status = "Progressing"
  hs.message = "Being deleted"
  if ready ~= nil and ready.reason == "Deleting" then
    hs.message = describe(ready)
  end
  return hs
end

if st.observedGeneration == nil or st.observedGeneration == 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to pick up this Customer (no status yet)"
  return hs
end
if st.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation ..
    " (it last observed " .. st.observedGeneration .. ")"
  return hs
end
if stalled ~= nil then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end
hs.status = "Progressing"
if ready ~= nil then
  hs.message = describe(ready)
else
  hs.message = "Waiting for the operator"
end
return hs
