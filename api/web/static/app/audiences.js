/* The merchant's audiences: list, create, refresh and delete them, and the offer form's audience choices.
   merchant.js calls GT.audiences (loaded first) with its fences, and to fill and read the offer form. */
"use strict";

(() => {
  const { api, el, fmt, setStatus } = GT;
  const FIGURES = {
    visitors: ["min_visits", "days"],
    regulars: ["min_days", "days"],
    lapsed: ["seen_within_days", "not_within_days"],
    dwellers: ["min_dwell_s", "days"],
  };
  const state = { list: [], fences: new Map() };

  function ruleText(rule) {
    const where = rule.tags ? `fences tagged ${rule.tags.join(", ")}` : `${rule.geofence_ids.length} fence(s)`;
    const say = {
      visitors: () => `${rule.min_visits}+ visits in ${rule.days} days`,
      regulars: () => `visits on ${rule.min_days}+ days in ${rule.days}`,
      lapsed: () => `seen in ${rule.seen_within_days} days, not in the last ${rule.not_within_days}`,
      dwellers: () => `stayed ${Math.round(rule.min_dwell_s / 60)}+ min in ${rule.days} days`,
    };
    return `${rule.kind}: ${say[rule.kind]()}, ${where}`;
  }

  function sizeText(audience) {
    if (audience.suppressed) return "under k devices: matches nobody";
    return `${fmt(audience.size)} devices`;
  }

  function render() {
    const list = document.getElementById("audience-list");
    list.replaceChildren();
    document.getElementById("audience-count").textContent = `(${state.list.length})`;
    if (!state.list.length) list.append(el("li", { class: "empty" }, "No audiences yet."));
    for (const audience of state.list) {
      const refreshed = audience.refreshed_at ? new Date(audience.refreshed_at).toLocaleString() : "never";
      list.append(
        el(
          "li",
          { "data-id": audience.id },
          el("strong", {}, audience.name),
          el("span", { class: "meta", "data-part": "size" }, ` ${sizeText(audience)}`),
          el("div", { class: "meta" }, `${ruleText(audience.rule)} · refreshed ${refreshed}`),
          el(
            "div",
            { class: "row" },
            el("button", { type: "button", onclick: () => refresh(audience) }, "Refresh now"),
            el("button", { type: "button", class: "danger", onclick: () => remove(audience) }, "Delete"),
          ),
        ),
      );
    }
  }

  function renderFenceChoices() {
    const box = document.getElementById("audience-fences");
    const chosen = new Set([...box.querySelectorAll("input:checked")].map((i) => i.value));
    box.replaceChildren();
    for (const [id, feature] of state.fences) {
      const label = `${feature.properties.name || id}${feature.properties.purpose === "audience" ? " (audience only)" : ""}`;
      box.append(el("label", { class: "inline" }, el("input", { type: "checkbox", value: id, checked: chosen.has(id) }), ` ${label}`));
    }
  }

  function showKind() {
    const kind = document.getElementById("audience-form").elements.kind.value;
    document.querySelectorAll("#audience-form [data-kind]").forEach((label) => {
      label.hidden = !label.dataset.kind.split(" ").includes(kind);
    });
  }

  function ruleOf(form) {
    const f = form.elements;
    const rule = { kind: f.kind.value };
    for (const name of FIGURES[rule.kind]) if (f[name].value !== "") rule[name] = Number(f[name].value);
    const tags = f.audience_tags.value.split(",").map((t) => t.trim()).filter(Boolean);
    if (tags.length) rule.tags = tags;
    else rule.geofence_ids = [...document.querySelectorAll("#audience-fences input:checked")].map((b) => b.value);
    return rule;
  }

  function showError(err) {
    // the outline shows where; the words say what (without the field's path in front of them again)
    const prefix = err.field ? `${err.field}: ` : "";
    document.getElementById("audience-error").textContent = prefix && err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
    document.querySelectorAll("#audience-form [data-field]").forEach((node) => {
      node.classList.toggle("invalid", Boolean(err.field) && err.field.startsWith(node.dataset.field));
    });
  }

  async function create(event) {
    event.preventDefault();
    const form = document.getElementById("audience-form");
    document.getElementById("audience-error").textContent = "";
    document.querySelectorAll("#audience-form .invalid").forEach((node) => node.classList.remove("invalid"));
    try {
      const made = await api("/v1/audiences", { method: "POST", json: { name: form.elements.audience_name.value.trim(), rule: ruleOf(form) } });
      form.reset();
      showKind();
      await load();
      setStatus(`Created audience “${made.name}”: ${sizeText(made)}.`, "good");
    } catch (err) {
      showError(err);
      setStatus("The audience was not created.", "bad");
    }
  }

  async function refresh(audience) {
    try {
      const fresh = await api(`/v1/audiences/${encodeURIComponent(audience.id)}/refresh`, { method: "POST" });
      await load();
      setStatus(`Refreshed “${fresh.name}”: ${sizeText(fresh)}.`, "good");
    } catch (err) {
      setStatus(err.message, "bad");
    }
  }

  async function remove(audience) {
    if (!window.confirm(`Delete the audience “${audience.name}”?`)) return;
    try {
      await api(`/v1/audiences/${encodeURIComponent(audience.id)}`, { method: "DELETE" });
      await load();
      setStatus(`Deleted audience “${audience.name}”.`, "good");
    } catch (err) {
      setStatus(err.message, "bad"); // 409 while an offer targets it: the message names the offers
    }
  }

  async function load() {
    state.list = (await api("/v1/audiences")).audiences;
    render();
    fillOfferChoices(document.getElementById("offer-audiences").dataset.offer ? JSON.parse(document.getElementById("offer-audiences").dataset.offer) : null);
  }

  /** One select per audience in the offer form: not used, only its members, or everyone but its members. */
  function fillOfferChoices(selection) {
    const box = document.getElementById("offer-audiences");
    box.dataset.offer = JSON.stringify(selection || null);
    box.replaceChildren();
    if (!state.list.length) box.append(el("p", { class: "hint" }, "Create an audience above to target one."));
    const include = new Set((selection && selection.include) || []);
    const exclude = new Set((selection && selection.exclude) || []);
    for (const audience of state.list) {
      const value = include.has(audience.id) ? "include" : exclude.has(audience.id) ? "exclude" : "";
      const select = el(
        "select",
        { "data-audience": audience.id, "aria-label": `audience ${audience.name}` },
        el("option", { value: "" }, "—"),
        el("option", { value: "include" }, "only them"),
        el("option", { value: "exclude" }, "not them"),
      );
      select.value = value;
      box.append(el("label", {}, `${audience.name} `, select));
    }
  }

  function chosenForOffer() {
    const selection = { include: [], exclude: [] };
    document.querySelectorAll("#offer-audiences select").forEach((s) => s.value && selection[s.value].push(s.dataset.audience));
    return selection.include.length || selection.exclude.length ? selection : null;
  }

  function setFences(fences) {
    state.fences = fences;
    renderFenceChoices();
  }

  document.getElementById("audience-form").addEventListener("submit", create);
  document.getElementById("audience-form").elements.kind.addEventListener("change", showKind);
  showKind();
  GT.audiences = { load, setFences, fillOfferChoices, chosenForOffer };
})();
