/* "Why not shown here?": after the button, a click on the map asks the decision explainer (GET /v1/explain, a
   dry run) about the merchant's own offers for a phone at that point now, and shows each one's outcome. */
"use strict";

(() => {
  const { api, el, setStatus } = GT;
  const state = { map: null, marker: null };

  function answer(found) {
    const box = el("div", { class: "why-not", "data-part": "why-not" });
    if (!found.offers.length) box.append(el("p", {}, "None of your offers is on a fence within 1 km of here."));
    for (const o of found.offers) {
      const said = o.outcome === "served" ? "shown here now" : o.detail;
      box.append(el("p", { class: o.outcome, "data-offer": o.offer_id }, el("strong", {}, o.title), ` — ${said}`));
    }
    box.append(el("p", { class: "meta" }, "For a phone that has not seen your offers yet, asking for 5 offers; nothing was counted."));
    return box;
  }

  async function ask(event) {
    const { lat, lng } = event.latlng;
    document.getElementById("why-not").classList.remove("active");
    const params = new URLSearchParams({ lat: lat.toFixed(6), lon: lng.toFixed(6), device_id: "why-not-here", accuracy_m: "10" });
    try {
      const found = await api(`/v1/explain?${params}`);
      if (state.marker) state.marker.remove();
      state.marker = L.popup({ maxWidth: 360 }).setLatLng(event.latlng).setContent(answer(found)).openOn(state.map);
      setStatus("");
    } catch (err) {
      setStatus(`Could not explain: ${err.message}`, "bad");
    }
  }

  function arm() {
    document.getElementById("why-not").classList.add("active");
    setStatus("Click the map where a customer would be.");
    state.map.once("click", ask);
  }

  function attach(map) {
    state.map = map;
  }

  document.getElementById("why-not").addEventListener("click", arm);
  GT.whyNot = { attach };
})();
