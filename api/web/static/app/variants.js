/* An offer's creative variants as they stand, under its variants field: the share of new impressions each one
   gets now (optimized rotation moves it towards clicks) and its impressions, clicks and click rate over the
   last 7 days (GET /v1/reports/variants; all figures hidden while one variant has fewer than k devices). */
"use strict";

(() => {
  const { api, el } = GT;

  const percent = (value) => (value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)} %`);
  const count = (value) => (value === null ? "hidden" : value.toLocaleString());

  function table(found) {
    const head = el("tr", {}, ...["Variant", "Share now", "Shown", "Clicks", "Click rate"].map((h) => el("th", {}, h)));
    const rows = found.variants.map((v) =>
      el("tr", { "data-variant": v.variant_id },
        el("td", { title: v.title }, v.variant_id),
        el("td", { class: "num", "data-part": "share" }, percent(v.share)),
        el("td", { class: "num" }, count(v.impressions)),
        el("td", { class: "num", "data-part": "clicks" }, count(v.clicks)),
        el("td", { class: "num", "data-part": "ctr" }, v.impressions === null ? "hidden" : percent(v.ctr)),
      ),
    );
    const hidden = found.variants.some((v) => v.impressions === null);
    const words = {
      optimized: "Shares move towards the variant clicked more (after 200 impressions each); none drops below 5 %.",
      weighted: "Shares follow the weights you gave.",
      even: "Every variant gets the same share.",
    }[found.rotation];
    return [
      el("table", { class: "variant-live" }, el("thead", {}, head), el("tbody", {}, ...rows)),
      el("p", { class: "hint" }, "Shown, clicks and click rate: the last 7 days. ", words, hidden ? ` Figures are hidden while a variant has been shown to fewer than ${found.k} phones.` : ""),
    ];
  }

  /** Fills the box for a saved offer with variants; empties and hides it otherwise. */
  async function show(offer) {
    const box = document.getElementById("variant-live");
    box.replaceChildren();
    box.hidden = !(offer && offer.variants && offer.variants.length);
    if (box.hidden) return;
    try {
      const found = await api(`/v1/reports/variants?${new URLSearchParams({ offer_id: offer.id })}`);
      box.replaceChildren(el("h4", {}, "Variants now"), ...table(found));
    } catch (err) {
      box.replaceChildren(el("p", { class: "error" }, `Could not read the variants' figures: ${err.message}`));
    }
  }

  GT.variants = { show };
})();
