/* The merchant map: draw, edit and delete geofences, see their H3 cover, manage offers, upload fence files. */
"use strict";

(() => {
  const { api, el, fmt, setStatus } = GT;
  const DAY_NAMES = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
  const SHAPE_STYLE = { color: "#2563eb", weight: 2, fillOpacity: 0.12 };
  const ERROR_STYLE = { color: "#dc2626", weight: 3, fillOpacity: 0.2 };
  const AUDIENCE_STYLE = { color: "#d97706", weight: 2, dashArray: "6 4", fillOpacity: 0.08 }; // never served

  const state = {
    map: null,
    fences: new Map(), // id -> Feature as the API returned it
    layers: new Map(), // id -> Leaflet layer on the map
    labels: new Map(), // id -> the fence's name, shown on the map at every zoom
    offers: [],
    selected: null, // the Leaflet layer being looked at (saved or new)
    cells: null, // layer group of the selected fence's H3 cells
    editingOffer: null,
  };

  // ---- shapes <-> GeoJSON ------------------------------------------------------------------------------------

  function featureOf(layer, name) {
    const properties = { name };
    if (layer instanceof L.Circle) {
      const c = layer.getLatLng();
      properties.radius_m = Math.round(layer.getRadius() * 100) / 100;
      return { type: "Feature", geometry: { type: "Point", coordinates: [c.lng, c.lat] }, properties };
    }
    const feature = layer.toGeoJSON(8);
    feature.properties = properties;
    return feature;
  }

  function layerOf(feature) {
    const g = feature.geometry;
    const style = feature.properties.purpose === "audience" ? AUDIENCE_STYLE : SHAPE_STYLE;
    if (g.type === "Point") {
      return L.circle([g.coordinates[1], g.coordinates[0]], { ...style, radius: feature.properties.radius_m });
    }
    return L.GeoJSON.geometryToLayer(feature, style);
  }

  // ---- the selected shape ------------------------------------------------------------------------------------

  function fenceIdOf(layer) {
    return layer && layer.gtFenceId ? layer.gtFenceId : null;
  }

  function clearShapeError(layer) {
    if (!layer) return;
    layer.unbindTooltip();
    if (layer.setStyle) layer.setStyle(layer.gtAudience ? AUDIENCE_STYLE : SHAPE_STYLE);
    document.getElementById("shape-error").textContent = "";
    document.getElementById("shape-repair").hidden = true;
    document.querySelectorAll("#shape-form .invalid").forEach((n) => n.classList.remove("invalid"));

  }

  /** Put the API's message on the map beside the shape, at the vertex or spot it names when it names one. */
  function showShapeError(layer, err) {
    const where = err.field ? ` (${err.field})` : "";
    document.getElementById("shape-error").textContent = `${err.message}${where}`;
    const input = err.field && document.querySelector(`#shape-form [data-field="${err.field}"]`);
    if (input) input.classList.add("invalid");
    if (layer.setStyle) layer.setStyle(ERROR_STYLE);
    let at = null;
    const near = /near \[(-?[\d.]+), (-?[\d.]+)\]/.exec(err.message);
    if (near) at = L.latLng(Number(near[2]), Number(near[1]));
    const indexes = err.field && err.field.startsWith("geometry.coordinates") ? [...err.field.matchAll(/\[(\d+)\]/g)].map((m) => Number(m[1])) : [];
    if (!at && indexes.length && layer.getLatLngs) {
      let node = layer.getLatLngs();
      if (!Array.isArray(node[0])) node = [node];
      for (const i of indexes) node = Array.isArray(node) ? node[Math.min(i, node.length - 1)] : node;
      if (node instanceof L.LatLng) at = node;
    }
    if (!at) at = layer.getBounds ? layer.getBounds().getCenter() : layer.getLatLng();
    const text = document.createElement("span");
    text.textContent = err.message; // the message may quote what the user typed: never parse it as HTML
    layer.bindTooltip(text, { permanent: true, direction: "top", className: "shape-error" });
    layer.openTooltip(at);
  }

  function select(layer) {
    if (state.selected && state.selected !== layer) clearShapeError(state.selected);
    state.selected = layer;
    document.querySelectorAll("#fence-list li").forEach((li) => li.classList.toggle("selected", li.dataset.id === fenceIdOf(layer)));
    const panel = document.getElementById("shape-panel");
    panel.hidden = !layer;
    document.getElementById("shape-repair").hidden = true;

    if (state.cells) state.cells.remove();
    state.cells = null;
    if (!layer) return;
    const id = fenceIdOf(layer);
    const feature = id ? state.fences.get(id) : null;
    document.getElementById("shape-name").value = feature ? feature.properties.name || "" : layer.gtName || "";
    document.getElementById("shape-tags").value = feature ? (feature.properties.tags || []).join(", ") : "";
    document.getElementById("shape-timezone").value = feature ? feature.properties.timezone || "" : "";
    document.getElementById("shape-audience").checked = Boolean(feature && feature.properties.purpose === "audience");

    document.getElementById("shape-delete").hidden = !id;
    document.getElementById("shape-save").textContent = id ? "Save changes" : "Save fence";
    describe(layer);
    if (id && !layer.gtDirty) showCells(id);
  }

  function describe(layer) {
    const id = fenceIdOf(layer);
    const feature = id ? state.fences.get(id) : null;
    let text = id ? `Fence ${id}` : "New shape, not saved yet.";
    if (feature && !layer.gtDirty) {
      const p = feature.properties;
      text += `: ${fmt(Math.round(p.area_m2))} m², time zone ${p.timezone}, ${p.h3.interior_cells} interior and ${p.h3.boundary_cells} boundary H3 cells at res ${p.h3.res}.`;
    } else if (layer.gtDirty && id) {
      text += ": changed on the map, not saved yet.";
    }
    document.getElementById("shape-info").textContent = text;
  }

  async function showCells(id) {
    try {
      const cover = await api(`/v1/geofences/${encodeURIComponent(id)}/cells`);
      if (fenceIdOf(state.selected) !== id) return;
      const group = L.layerGroup();
      for (const cell of cover.features) {
        const ring = cell.geometry.coordinates[0].map(([lon, lat]) => [lat, lon]);
        const kind = cell.properties.kind;
        L.polygon(ring, {
          pmIgnore: true,
          interactive: false,
          className: `cell cell-${kind}`,
          color: kind === "interior" ? "#16a34a" : "#ea580c",
          weight: 1,
          dashArray: kind === "interior" ? null : "3 3",
          fillOpacity: kind === "interior" ? 0.25 : 0.08,
        }).addTo(group);
      }
      if (state.cells) state.cells.remove();
      state.cells = group.addTo(state.map);
    } catch (err) {
      setStatus(`Cells could not be loaded: ${err.message}`, "bad");
    }
  }

  function watch(layer) {
    layer.on("click", () => select(layer));
    layer.on("pm:edit", () => {
      layer.gtDirty = true;
      if (state.cells && state.selected === layer) state.cells.remove();
      select(layer);
    });
  }

  // ---- fences ------------------------------------------------------------------------------------------------

  async function loadFences() {
    const collection = await api("/v1/geofences");
    for (const layer of state.layers.values()) layer.remove();
    state.fences.clear();
    state.layers.clear();
    for (const id of [...state.labels.keys()]) label(id, null, null);
    for (const feature of collection.features) addSaved(feature);
    renderFenceList();
    return collection.features;
  }

  function addSaved(feature) {
    const old = state.layers.get(feature.id);
    if (old) old.remove();
    const layer = layerOf(feature);
    layer.gtFenceId = feature.id;
    layer.gtAudience = feature.properties.purpose === "audience";
    layer.addTo(state.map);
    watch(layer);
    state.fences.set(feature.id, feature);
    state.layers.set(feature.id, layer);
    label(feature.id, feature.properties.name, layer);
    return layer;
  }

  /** The fence's name on the map (a DOM text node, never HTML), or none when it is gone (null layer). It hangs
   * below the shape, so a small fence is never hidden under its own name. */
  function label(id, name, layer) {
    const old = state.labels.get(id);
    if (old) old.remove();
    state.labels.delete(id);
    if (!layer || !name) return;
    const box = layer.getBounds();
    const tip = L.tooltip({ permanent: true, direction: "bottom", offset: [0, 2], className: "fence-label", interactive: false })
      .setLatLng(L.latLng(box.getSouth(), box.getCenter().lng))
      .setContent(el("span", {}, name))
      .addTo(state.map);
    state.labels.set(id, tip);
    declutterSoon();
  }

  /** Labels give way: one that would overlap a label already shown is hidden until zooming in makes room
   * (the larger fence's name is shown first). */
  let declutterPending = false;
  function declutterSoon() {
    if (declutterPending) return;
    declutterPending = true;
    requestAnimationFrame(() => { declutterPending = false; declutter(); });
  }

  function declutter() {
    const byArea = [...state.labels.entries()].sort((a, b) => area(b[0]) - area(a[0]));
    const shown = [];
    for (const [, tip] of byArea) {
      const node = tip.getElement();
      if (!node) continue;
      node.style.visibility = "";
      const r = node.getBoundingClientRect();
      if (shown.some((s) => r.left < s.right && r.right > s.left && r.top < s.bottom && r.bottom > s.top)) {
        node.style.visibility = "hidden";
        continue;
      }
      shown.push(r);
    }
  }

  function area(id) {
    const feature = state.fences.get(id);
    return (feature && feature.properties.area_m2) || 0;
  }

  /** "3 map cells": how much of the index a fence takes, in a merchant's words (the split is in the detail line). */
  function cellsText(h3) {
    const total = h3.interior_cells + h3.boundary_cells;
    return `${fmt(total)} map cell${total === 1 ? "" : "s"}`;
  }

  /** The offers on a fence: by its id, by one of its tags, or over all of the merchant's fences. */
  function offersOf(fenceId) {
    const tags = (state.fences.get(fenceId)?.properties.tags) || [];
    return state.offers.filter((o) => o.all_geofences || o.geofence_ids.includes(fenceId)
      || (o.geofence_tags || []).some((t) => tags.includes(t)));
  }

  function renderFenceList() {
    const list = document.getElementById("fence-list");
    list.replaceChildren();
    document.getElementById("fence-count").textContent = `(${state.fences.size})`;
    if (!state.fences.size) list.append(el("li", { class: "empty" }, "No fences yet: draw one on the map or upload a file."));
    for (const [id, feature] of state.fences) {
      const p = feature.properties;
      const offers = offersOf(id);
      const shape = feature.geometry.type === "Point" ? `circle ${fmt(p.radius_m)} m` : feature.geometry.type.toLowerCase();
      const kind = p.purpose === "audience" ? `audience only, ${shape}` : shape;
      list.append(
        el(
          "li",
          { "data-id": id, class: fenceIdOf(state.selected) === id ? "selected" : "", onclick: () => focusFence(id) },
          el("strong", {}, p.name || "(unnamed)"),
          el("span", { class: "meta" }, ` ${kind}, ${fmt(Math.round(p.area_m2))} m², ${cellsText(p.h3)}`),
          el("div", { class: "meta" }, offers.length ? `Offers: ${offers.map((o) => o.title).join(", ")}` : "No offers"),
        ),
      );
    }
    renderOfferFenceChoices();
    GT.audiences.setFences(state.fences);
    GT.webhooks.setFences(state.fences);
  }

  function focusFence(id) {
    const layer = state.layers.get(id);
    if (!layer) return;
    state.map.fitBounds(layer.getBounds(), { maxZoom: 18, padding: [30, 30] });
    select(layer);
  }

  async function saveShape(event, repair = false) {
    if (event) event.preventDefault();
    const layer = state.selected;
    if (!layer) return;
    const name = document.getElementById("shape-name").value.trim();
    layer.gtName = name;
    const feature = featureOf(layer, name);
    feature.properties.tags = document.getElementById("shape-tags").value.split(",").map((t) => t.trim()).filter(Boolean);
    // What the form shows is what is kept; an empty field lets the API derive the zone from the location.
    const zone = document.getElementById("shape-timezone").value.trim();
    if (zone) feature.properties.timezone = zone;
    if (document.getElementById("shape-audience").checked) feature.properties.purpose = "audience";
    else if (layer.gtAudience) feature.properties.purpose = null; // a patch's null removes it: served again

    const id = fenceIdOf(layer);
    clearShapeError(layer);
    const query = repair ? "?repair=true" : "";
    try {
      const saved = id
        ? await api(`/v1/geofences/${encodeURIComponent(id)}${query}`, { method: "PATCH", json: { geometry: feature.geometry, properties: feature.properties } })
        : await api(`/v1/geofences${query}`, { method: "POST", json: feature });
      layer.remove();
      const fresh = addSaved(saved);
      renderFenceList();
      select(fresh);
      const doubts = (saved.warnings || []).map((w) => w.message).join(" ");
      if (doubts) setStatus(`Saved fence “${saved.properties.name || saved.id}”, but ${doubts}`, "bad");
      else setStatus(`Saved fence “${saved.properties.name || saved.id}”.`, "good");
    } catch (err) {
      showShapeError(layer, err);
      document.getElementById("shape-repair").hidden = err.code !== "invalid_geometry";
      setStatus("The fence was not saved.", "bad");
    }
  }

  function discardShape() {
    const layer = state.selected;
    if (!layer) return;
    const id = fenceIdOf(layer);
    layer.remove();
    select(null);
    if (id) select(addSaved(state.fences.get(id)));
  }

  async function deleteFence(layer) {
    const id = fenceIdOf(layer);
    if (!id) {
      layer.remove();
      if (state.selected === layer) select(null);
      return;
    }
    const name = state.fences.get(id).properties.name || id;
    if (!window.confirm(`Delete the fence “${name}”? Offers lose it; an offer left without fences stops serving.`)) {
      if (!state.map.hasLayer(layer)) addSaved(state.fences.get(id));
      return;
    }
    try {
      await api(`/v1/geofences/${encodeURIComponent(id)}`, { method: "DELETE" });
      layer.remove();
      label(id, null, null);
      state.fences.delete(id);
      state.layers.delete(id);
      if (state.selected === layer) select(null);
      await loadOffers();
      setStatus(`Deleted fence “${name}”.`, "good");
    } catch (err) {
      if (!state.map.hasLayer(layer)) addSaved(state.fences.get(id));
      setStatus(`The fence was not deleted: ${err.message}`, "bad");
    }
  }

  async function upload(event) {
    event.preventDefault();
    const file = document.getElementById("upload-file").files[0];
    const out = document.getElementById("upload-result");
    if (!file) {
      out.textContent = "Choose a file first.";
      return;
    }
    const form = new FormData();
    form.append("file", file);
    const repair = document.getElementById("upload-repair").checked ? "?repair=true" : "";
    out.textContent = "Uploading…";
    try {
      const result = await api(`/v1/geofences/bulk${repair}`, { method: "POST", form });
      const rejected = result.results.filter((r) => r.status !== "created");
      out.replaceChildren(
        el("p", {}, `${result.created} fence(s) created, ${result.rejected} rejected.`),
        el("ul", { class: "errors" }, rejected.map((r) => el("li", {}, `feature ${r.index}: ${r.error.message}${r.error.field ? ` (${r.error.field})` : ""}`))),
      );
      const features = await loadFences();
      const group = L.featureGroup(features.map((f) => state.layers.get(f.id)));
      if (features.length) state.map.fitBounds(group.getBounds(), { maxZoom: 17 });
    } catch (err) {
      out.replaceChildren(el("p", { class: "error" }, `${err.message}${err.field ? ` (${err.field})` : ""}`));
    }
  }

  // ---- offers ------------------------------------------------------------------------------------------------

  async function loadOffers() {
    state.offers = (await api("/v1/offers")).offers;
    renderOfferList();
    renderFenceList();
  }

  function scheduleText(schedule) {
    if (!schedule || !schedule.windows || !schedule.windows.length) return "always";
    return schedule.windows.map((w) => `${daysText(w.days)} ${w.start}–${w.end}`).join(", ");
  }

  function daysText(days) {
    const set = new Set(days);
    if (set.size === 7) return "daily";
    if (set.size === 5 && DAY_NAMES.slice(0, 5).every((d) => set.has(d))) return "weekdays";
    if (set.size === 2 && set.has("sat") && set.has("sun")) return "weekends";
    return DAY_NAMES.filter((d) => set.has(d)).join(" ");
  }

  function renderOfferList() {
    const list = document.getElementById("offer-list");
    list.replaceChildren();
    document.getElementById("offer-count").textContent = `(${state.offers.length})`;
    if (!state.offers.length) list.append(el("li", { class: "empty" }, "No offers yet."));
    for (const offer of state.offers) {
      const fences = [
        ...(offer.all_geofences ? ["all your fences"] : []),
        ...offer.geofence_ids.map((id) => (state.fences.get(id) || { properties: { name: id } }).properties.name || id),
        ...(offer.geofence_tags || []).map((tag) => `every fence tagged “${tag}”`),
      ];
      list.append(
        el(
          "li",
          { "data-id": offer.id, onclick: () => openOffer(offer) },
          el("strong", {}, offer.title),
          offer.special ? el("span", { class: "badge" }, "special") : null,
          offer.trigger ? el("span", { class: "badge" }, `push on ${offer.trigger.on}`) : null,
          offer.variants && offer.variants.length ? el("span", { class: "badge" }, `${offer.variants.length} variants, ${offer.rotation}`) : null,
          el("span", { class: `badge status-${offer.status}` }, offer.status),
          el("div", { class: "meta" }, `${scheduleText(offer.schedule)} · at ${fences.join(", ")}`),
          el("button", { type: "button", "data-part": "poster", onclick: (event) => { event.stopPropagation(); GT.posters.open(offer, storesOf(offer)); } }, "Poster"),
        ),
      );
    }
  }

  /** The stores (fences) an offer is on now, by id, by tag or as all of them: where a poster can hang. */
  function storesOf(offer) {
    const stores = [];
    for (const [id, feature] of state.fences) {
      const p = feature.properties;
      if (p.purpose === "audience") continue;
      const tagged = (offer.geofence_tags || []).some((tag) => (p.tags || []).includes(tag));
      if (offer.all_geofences || offer.geofence_ids.includes(id) || tagged) stores.push([id, p.name || id]);
    }
    return stores;
  }

  function renderOfferFenceChoices() {
    const box = document.getElementById("offer-fences");
    const chosen = new Set([...box.querySelectorAll("input:checked")].map((i) => i.value));
    box.replaceChildren();
    if (!state.fences.size) box.append(el("p", { class: "hint" }, "Save a fence first."));
    for (const [id, feature] of state.fences) {
      if (feature.properties.purpose === "audience") continue; // never served: no offers there
      box.append(el("label", { class: "inline" }, el("input", { type: "checkbox", value: id, checked: chosen.has(id) }), ` ${feature.properties.name || id}`));
    }
  }

  function addWindow(window = null) {
    const row = document.getElementById("window-row").content.firstElementChild.cloneNode(true);
    if (window) {
      const days = new Set(window.days);
      row.querySelectorAll("[data-part=days] input").forEach((box) => (box.checked = days.has(box.value)));
      row.querySelector("[data-part=start]").value = window.start;
      row.querySelector("[data-part=end]").value = window.end; // 24-hour text: "24:00" is the end of the day
    }
    row.querySelector("[data-part=remove]").addEventListener("click", () => row.remove());
    document.getElementById("windows").append(row);
  }

  function openOffer(offer = null) {
    state.editingOffer = offer;
    const form = document.getElementById("offer-form");
    form.reset();
    clearOfferErrors();
    document.getElementById("windows").replaceChildren();
    document.getElementById("offer-panel").hidden = false;
    document.getElementById("offer-heading").textContent = offer ? `Edit offer “${offer.title}”` : "New offer";
    document.getElementById("offer-delete").hidden = !offer;
    renderOfferFenceChoices();
    const ids = new Set(offer ? offer.geofence_ids : fenceIdOf(state.selected) ? [fenceIdOf(state.selected)] : []);
    document.querySelectorAll("#offer-fences input").forEach((box) => (box.checked = ids.has(box.value)));
    GT.audiences.fillOfferChoices(offer && offer.targeting ? offer.targeting.audiences : null);
    GT.variants.show(offer);
    if (offer) {
      const f = form.elements;
      f.title.value = offer.title;
      f.body.value = offer.body || "";
      f.url.value = offer.url || "";
      f.nearby_m.value = offer.nearby_m;
      f.priority.value = offer.priority;
      f.status.value = offer.status;
      f.special.checked = offer.special;
      const schedule = offer.schedule || {};
      (schedule.windows || []).forEach(addWindow);
      f.valid_from.value = schedule.valid_from || "";
      f.valid_to.value = schedule.valid_to || "";
      for (const name of ["per_device_per_hour", "per_device_per_day", "per_device_per_week", "per_device_lifetime"]) {
        f[name].value = offer.caps && offer.caps[name] ? offer.caps[name] : "";
      }
      f.daily_budget.value = offer.daily_budget || "";
      f.pacing.value = offer.pacing || "asap";
      f.bid_cpm.value = offer.bid_cpm ?? "";
      f.trigger_on.value = offer.trigger ? offer.trigger.on : "";
      f.trigger_dwell_s.value = offer.trigger && offer.trigger.dwell_s ? offer.trigger.dwell_s : "";
      f.holdout_pct.value = offer.holdout_pct || 0;
      const redemption = offer.redemption;
      f.redemption_code.value = redemption ? (redemption.unique ? "unique" : redemption.code) : "";
      f.variants.value = offer.variants && offer.variants.length ? JSON.stringify(offer.variants, null, 1) : "";
      f.rotation.value = offer.rotation || "even";
      const expr = offer.targeting && offer.targeting.expr;
      f.targeting_expr.value = expr ? JSON.stringify(expr, null, 1) : "";
    }
    form.elements.title.focus();
  }

  /** A JSON field of the form (variants, the targeting expression): a typing mistake is told here, the rest of
      the rules by the API. */
  function parsedJson(text, field, what) {
    try {
      return JSON.parse(text);
    } catch (err) {
      throw Object.assign(new Error(`${what} is not JSON: ${err.message}`), { field });
    }
  }

  function number(input) {
    return input.value === "" ? null : Number(input.value);
  }

  function offerBody() {
    const f = document.getElementById("offer-form").elements;
    const windows = [...document.querySelectorAll("#windows [data-window]")].map((row) => {
      const start = row.querySelector("[data-part=start]").value;
      let end = row.querySelector("[data-part=end]").value;
      if (start === "00:00" && end === "00:00") end = "24:00"; // the whole day
      return { days: [...row.querySelectorAll("[data-part=days] input:checked")].map((b) => b.value), start, end };
    });
    const schedule = {};
    if (windows.length) schedule.windows = windows;
    if (f.valid_from.value) schedule.valid_from = f.valid_from.value;
    if (f.valid_to.value) schedule.valid_to = f.valid_to.value;
    const blackout = state.editingOffer && state.editingOffer.schedule && state.editingOffer.schedule.blackout_dates;
    if (blackout && blackout.length) schedule.blackout_dates = blackout; // not in the form: keep what is stored

    const caps = {};
    for (const name of ["per_device_per_hour", "per_device_per_day", "per_device_per_week", "per_device_lifetime"]) {
      if (f[name].value !== "") caps[name] = Number(f[name].value);
    }
    const trigger = f.trigger_on.value ? { on: f.trigger_on.value } : null;
    // targeting the form does not show (age, interests, …) is kept as stored; audiences are the form's
    const targeting = { ...((state.editingOffer && state.editingOffer.targeting) || {}) };
    delete targeting.audiences;
    delete targeting.expr;
    const audiences = GT.audiences.chosenForOffer();
    if (audiences) targeting.audiences = audiences;
    const expr = f.targeting_expr.value.trim();
    if (expr) targeting.expr = parsedJson(expr, "targeting.expr", "the targeting expression");
    const code = f.redemption_code.value.trim();
    const redemption = !code ? null : code.toLowerCase() === "unique" ? { unique: true } : { code };
    if (trigger && trigger.on === "dwell" && f.trigger_dwell_s.value !== "") trigger.dwell_s = Number(f.trigger_dwell_s.value);
    return {
      title: f.title.value.trim(),
      body: f.body.value,
      url: f.url.value.trim() || null,
      geofence_ids: [...document.querySelectorAll("#offer-fences input:checked")].map((b) => b.value),
      nearby_m: number(f.nearby_m) ?? 0,
      priority: number(f.priority) ?? 50,
      status: f.status.value,
      special: f.special.checked,
      schedule: Object.keys(schedule).length ? schedule : null,
      caps: Object.keys(caps).length ? caps : null,
      daily_budget: number(f.daily_budget),
      pacing: f.pacing.value,
      variants: f.variants.value.trim() ? parsedJson(f.variants.value, "variants", "the variants") : [],
      rotation: f.rotation.value,
      bid_cpm: number(f.bid_cpm),
      trigger,
      targeting,
      holdout_pct: number(f.holdout_pct) ?? 0,
      redemption,
    };
  }

  function clearOfferErrors() {
    document.getElementById("offer-error").textContent = "";
    document.querySelectorAll("#offer-form .invalid").forEach((n) => n.classList.remove("invalid"));
  }

  /** Mark the form control the API's `field` path points at (the closest one it names). */
  function showOfferError(err) {
    document.getElementById("offer-error").textContent = `${err.message}${err.field ? ` (${err.field})` : ""}`;
    if (!err.field) return;
    const windowMatch = /^schedule\.windows\[(\d+)\](?:\.(\w+))?/.exec(err.field);
    let target = null;
    if (windowMatch) {
      const row = document.querySelectorAll("#windows [data-window]")[Number(windowMatch[1])];
      if (row) target = row.querySelector(`[data-part=${windowMatch[2] || "days"}]`) || row;
    }
    if (!target) {
      let best = "";
      document.querySelectorAll("#offer-form [data-field]").forEach((node) => {
        const name = node.dataset.field;
        if ((err.field === name || err.field.startsWith(name + ".") || err.field.startsWith(name + "[")) && name.length > best.length) {
          best = name;
          target = node;
        }
      });
    }
    if (target) {
      target.classList.add("invalid");
      target.scrollIntoView({ block: "nearest" });
    }
  }

  async function saveOffer(event) {
    event.preventDefault();
    clearOfferErrors();
    const offer = state.editingOffer;
    try {
      const body = offerBody();
      const saved = offer
        ? await api(`/v1/offers/${encodeURIComponent(offer.id)}`, { method: "PATCH", json: body })
        : await api("/v1/offers", { method: "POST", json: body });
      await loadOffers();
      state.editingOffer = saved;
      document.getElementById("offer-panel").hidden = true;
      setStatus(`Saved offer “${saved.title}”.`, "good");
    } catch (err) {
      showOfferError(err);
      setStatus("The offer was not saved.", "bad");
    }
  }

  async function deleteOffer() {
    const offer = state.editingOffer;
    if (!offer || !window.confirm(`Delete the offer “${offer.title}”?`)) return;
    try {
      await api(`/v1/offers/${encodeURIComponent(offer.id)}`, { method: "DELETE" });
      document.getElementById("offer-panel").hidden = true;
      await loadOffers();
      setStatus(`Deleted offer “${offer.title}”.`, "good");
    } catch (err) {
      showOfferError(err);
    }
  }

  // ---- start -------------------------------------------------------------------------------------------------

  function setUpMap() {
    const map = GT.baseMap(document.getElementById("map"));
    state.map = map;
    map.on("zoomend moveend", declutterSoon);
    map.pm.addControls({
      position: "topleft",
      drawMarker: false,
      drawCircleMarker: false,
      drawPolyline: false,
      drawText: false,
      cutPolygon: false,
      rotateMode: false,
      drawPolygon: true,
      drawRectangle: true,
      drawCircle: true,
      editMode: true,
      dragMode: true,
      removalMode: true,
    });
    // Let the API judge self-intersections: it says where, and can repair them.
    map.pm.setGlobalOptions({ allowSelfIntersection: true, pathOptions: SHAPE_STYLE });
    map.on("pm:create", ({ layer }) => {
      watch(layer);
      select(layer);
      document.getElementById("shape-name").focus();
      setStatus("Name the new fence and save it.");
    });
    map.on("pm:remove", ({ layer }) => deleteFence(layer));
    window.geotarget = { map, state };
  }

  async function whoAmI() {
    await api("/v1/geofences"); // proves the key is a merchant key
    return "merchant";
  }

  async function start() {
    if (!state.map) {
      setUpMap();
      GT.whyNot.attach(state.map);
    }
    state.map.invalidateSize();
    const features = await loadFences();
    await loadOffers();
    await GT.audiences.load();
    await GT.webhooks.load();
    if (features.length) {
      const group = L.featureGroup(features.map((f) => state.layers.get(f.id)));
      state.map.fitBounds(group.getBounds(), { maxZoom: 17, padding: [20, 20] });
    }
    setStatus("Draw a polygon, rectangle or circle around a store with the tools on the left of the map.");
  }

  document.getElementById("shape-form").addEventListener("submit", saveShape);
  document.getElementById("shape-cancel").addEventListener("click", discardShape);
  document.getElementById("shape-repair").addEventListener("click", () => saveShape(null, true));

  document.getElementById("shape-delete").addEventListener("click", () => state.selected && deleteFence(state.selected));
  document.getElementById("upload-form").addEventListener("submit", upload);
  document.getElementById("offer-new").addEventListener("click", () => openOffer(null));
  document.getElementById("offer-close").addEventListener("click", () => (document.getElementById("offer-panel").hidden = true));
  document.getElementById("offer-delete").addEventListener("click", deleteOffer);
  document.getElementById("offer-form").addEventListener("submit", saveOffer);
  document.getElementById("window-add").addEventListener("click", () => addWindow());
  GT.login("geotarget.merchantKey", whoAmI, start);
})();
