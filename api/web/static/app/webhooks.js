/* The merchant's webhooks: subscribe (the signing secret is shown once, with the recipe to check it), send a
   test event, read recent deliveries, unsubscribe. merchant.js passes its fences for the "only these" choice. */
"use strict";

(() => {
  const { api, el, setStatus } = GT;
  const state = { list: [], fences: new Map() };

  function recipe(secret) {
    return [
      "import hashlib, hmac, time",
      "",
      `SECRET = b"${secret}"`,
      "",
      "def genuine(headers, raw_body: bytes) -> bool:",
      '    ts = headers["Geotarget-Timestamp"]',
      '    good = "v1=" + hmac.new(SECRET, ts.encode() + b"." + raw_body, hashlib.sha256).hexdigest()',
      '    return hmac.compare_digest(good, headers["Geotarget-Signature"]) and abs(time.time() - int(ts)) <= 300',
    ].join("\n");
  }

  function fenceNames(ids) {
    if (!ids) return "all fences";
    return ids.map((id) => (state.fences.get(id) ? state.fences.get(id).properties.name || id : id)).join(", ");
  }

  function render() {
    const list = document.getElementById("webhook-list");
    document.getElementById("webhook-count").textContent = `(${state.list.length})`;
    list.replaceChildren();
    if (!state.list.length) list.append(el("li", { class: "empty" }, "No webhooks yet."));
    for (const hook of state.list) {
      const out = el("div", { "data-part": "out" });
      list.append(
        el(
          "li",
          { "data-id": hook.id },
          el("strong", {}, hook.url),
          el("div", { class: "meta" }, `${hook.events.join(", ")} · ${fenceNames(hook.geofence_ids)}`),
          el(
            "div",
            { class: "row" },
            el("button", { type: "button", "data-part": "test", onclick: () => sendTest(hook, out) }, "Send test"),
            el("button", { type: "button", "data-part": "deliveries", onclick: () => showDeliveries(hook, out) }, "Deliveries"),
            el("button", { type: "button", class: "danger", onclick: () => remove(hook) }, "Delete"),
          ),
          out,
        ),
      );
    }
  }

  function renderFenceChoices() {
    const box = document.getElementById("webhook-fences");
    const chosen = new Set([...box.querySelectorAll("input:checked")].map((i) => i.value));
    box.replaceChildren();
    for (const [id, feature] of state.fences) {
      const name = feature.properties.name || id;
      box.append(el("label", { class: "inline" }, el("input", { type: "checkbox", value: id, checked: chosen.has(id) }), ` ${name}`));
    }
  }

  async function sendTest(hook, out) {
    out.replaceChildren(el("p", { class: "meta" }, "Sending a signed test event…"));
    try {
      const sent = await api(`/v1/webhooks/${encodeURIComponent(hook.id)}/test`, { method: "POST" });
      const how = sent.delivered
        ? `Delivered: your server answered ${sent.status} in ${Math.round(sent.latency_ms)} ms.`
        : `Not delivered: ${sent.status ? `your server answered ${sent.status}` : sent.error} (after ${Math.round(sent.latency_ms)} ms).`;
      out.replaceChildren(el("p", { class: sent.delivered ? "status good" : "status bad", "data-part": "test-result" }, how));
    } catch (err) {
      out.replaceChildren(el("p", { class: "status bad", "data-part": "test-result" }, err.message));
    }
  }

  async function showDeliveries(hook, out) {
    try {
      const { deliveries } = await api(`/v1/webhooks/${encodeURIComponent(hook.id)}/deliveries?limit=20`);
      if (!deliveries.length) {
        out.replaceChildren(el("p", { class: "meta", "data-part": "delivery" }, "No deliveries yet (tests are not listed)."));
        return;
      }
      out.replaceChildren(
        el(
          "ul",
          { class: "deliveries" },
          deliveries.map((d) => {
            const answer = d.response_status ? `answered ${d.response_status}` : d.error || "";
            const when = new Date(d.created_at).toLocaleString();
            return el("li", { class: `delivery-${d.status}`, "data-part": "delivery" }, `${when} ${d.type}: ${d.status} after ${d.attempts} attempt(s) ${answer}`);
          }),
        ),
      );
    } catch (err) {
      out.replaceChildren(el("p", { class: "status bad" }, err.message));
    }
  }

  async function remove(hook) {
    if (!window.confirm(`Stop sending events to ${hook.url}?`)) return;
    try {
      await api(`/v1/webhooks/${encodeURIComponent(hook.id)}`, { method: "DELETE" });
      await load();
      setStatus(`Deleted the webhook to ${hook.url}.`, "good");
    } catch (err) {
      setStatus(err.message, "bad");
    }
  }

  function showError(err) {
    const prefix = err.field ? `${err.field}: ` : "";
    document.getElementById("webhook-error").textContent = prefix && err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
    document.querySelectorAll("#webhook-form [data-field]").forEach((node) => {
      node.classList.toggle("invalid", Boolean(err.field) && err.field.split(/[.[]/)[0] === node.dataset.field);
    });
  }

  async function subscribe(event) {
    event.preventDefault();
    const form = document.getElementById("webhook-form");
    document.getElementById("webhook-error").textContent = "";
    form.querySelectorAll(".invalid").forEach((node) => node.classList.remove("invalid"));
    const events = [...document.querySelectorAll("#webhook-events input:checked")].map((b) => b.value);
    const fences = [...document.querySelectorAll("#webhook-fences input:checked")].map((b) => b.value);
    const body = { url: form.elements.url.value.trim(), events };
    if (fences.length) body.geofence_ids = fences;
    try {
      const made = await api("/v1/webhooks", { method: "POST", json: body });
      form.elements.url.value = "";
      document.querySelectorAll("#webhook-fences input:checked").forEach((box) => (box.checked = false));
      document.getElementById("webhook-secret-value").value = made.secret;
      document.getElementById("webhook-recipe").textContent = recipe(made.secret);
      const shown = document.getElementById("webhook-secret");
      shown.hidden = false;
      shown.scrollIntoView({ block: "nearest" });
      await load();
      setStatus(`Subscribed ${made.url}: keep its secret now.`, "good");
    } catch (err) {
      showError(err);
      setStatus("The webhook was not created.", "bad");
    }
  }

  function forgetSecret() {
    document.getElementById("webhook-secret-value").value = "";
    document.getElementById("webhook-recipe").textContent = "";
    document.getElementById("webhook-secret").hidden = true;
  }

  async function load() {
    state.list = (await api("/v1/webhooks")).webhooks;
    render();
  }

  function setFences(fences) {
    state.fences = fences;
    renderFenceChoices();
    render();
  }

  document.getElementById("webhook-form").addEventListener("submit", subscribe);
  document.getElementById("webhook-secret-done").addEventListener("click", forgetSecret);
  GT.webhooks = { load, setFences };
})();
