/* The reach dashboard: one report (offer, fence or merchant, date range) as charts, an H3 heatmap and a table. */
"use strict";

(() => {
  const { api, el, fmt, setStatus } = GT;
  const BUCKETS = ["1", "2", "3", "4", "5+"];
  const BUCKET_WORDS = { 1: "once", 2: "twice", 3: "3 times", 4: "4 times", "5+": "5 times or more" };
  const CARDS = {
    impressions: "impressions",
    reach: "devices reached (each once over the range)",
    visitors: "visitors (devices in a fence)",
    visits: "visits",
    visits_after_exposure: "visits after seeing an offer",
    cap_blocked: "withheld by a cap",
  };
  const COLUMNS = [
    ["period", "period"],
    ["impressions", "impressions"],
    ["pushes", "of which pushed"],
    ["reach", "reach"],
    ["avg_frequency", "avg. frequency"],
    ["visitors", "visitors"],
    ["visits", "visits"],
    ["visits_after_exposure", "visits after exposure"],
    ["cap_blocked", "cap-blocked"],
    ["clicks", "clicks"],
    ["redemptions", "redemptions"],
    ["scans", "poster scans"],
    ["scan_redemptions", "redeemed after a scan"],
    ["ctr", "CTR"],
    ["bids", "exchange bids"],
    ["wins", "bids won"],
    ["spend", "spend"],
  ];
  const state = { scopes: null, report: null, charts: {}, map: null, heat: null, query: null, reportTicket: 0, heatTicket: 0 };

  const isoDay = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;

  function scopeOptions(scopes) {
    const select = document.getElementById("scope");
    select.replaceChildren();
    const merchants = new Map(scopes.merchants.map((m) => [m.id, m.name]));
    const byName = (a, b) => (a.label || "").localeCompare(b.label || "");
    const groups = [
      ["Offers", scopes.offers.map((o) => ({ value: `offer_id=${o.id}`, label: `${o.title} · ${merchants.get(o.merchant_id) || o.merchant_id}` }))],
      ["Geofences", scopes.geofences.map((f) => ({ value: `geofence_id=${f.id}`, label: `${f.name || f.id} · ${merchants.get(f.merchant_id) || f.merchant_id}` }))],
      ["Merchants", scopes.merchants.map((m) => ({ value: `merchant_id=${m.id}`, label: m.name }))],
    ];
    for (const [label, options] of groups) {
      if (!options.length) continue;
      select.append(el("optgroup", { label }, options.sort(byName).map((o) => el("option", { value: o.value }, o.label))));
    }
    if (!select.options.length) select.append(el("option", { value: "" }, "nothing to report on yet"));
  }

  /** The fences whose surroundings the heatmap can show for the chosen scope. */
  function heatFences(scopeValue) {
    const [kind, id] = scopeValue.split("=");
    const { geofences, offers } = state.scopes;
    if (kind === "geofence_id") return geofences.filter((f) => f.id === id);
    if (kind === "offer_id") {
      const offer = offers.find((o) => o.id === id);
      return offer ? geofences.filter((f) => offer.geofence_ids.includes(f.id)) : [];
    }
    return geofences.filter((f) => f.merchant_id === id);
  }

  function renderHeatChoices() {
    const select = document.getElementById("heat-fence");
    const fences = heatFences(document.getElementById("scope").value);
    select.replaceChildren(...fences.map((f) => el("option", { value: f.id }, f.name || f.id)));
    if (!fences.length) select.append(el("option", { value: "" }, "no fence"));
  }

  function queryString() {
    const scope = document.getElementById("scope").value;
    const params = new URLSearchParams(scope);
    params.set("from", document.getElementById("from").value);
    params.set("to", document.getElementById("to").value);
    params.set("granularity", document.getElementById("granularity").value);
    return params;
  }

  async function run(event) {
    if (event) event.preventDefault();
    document.getElementById("report-error").textContent = "";
    if (!document.getElementById("scope").value) return;
    const params = queryString();
    const ticket = ++state.reportTicket;
    setStatus("Loading…");
    try {
      const report = await api(`/v1/reports/reach?${params}`);
      if (ticket !== state.reportTicket) return; // a newer report was asked for meanwhile
      state.report = report;
      state.query = params;
      document.querySelectorAll(".unit").forEach((n) => (n.textContent = report.granularity));
      renderTotals(report);
      renderVariants(report);
      await renderLift(params);
      if (ticket !== state.reportTicket) return;
      renderCharts(report);
      renderTable(report);
      document.getElementById("report-table").dataset.scope = params.toString().split("&")[0];
      document.getElementById("csv").disabled = false;
      setStatus(`${report.rows.length} ${report.granularity}(s) from ${report.from} to ${report.to}, calendar ${report.timezone}.`, "good");
      await renderHeatmap();
    } catch (err) {
      document.getElementById("report-error").textContent = `${err.message}${err.field ? ` (${err.field})` : ""}`;
      setStatus("");
    }
  }

  /** The window's totals come from the server: devices are counted once over the window, not once a day. */
  function renderTotals(report) {
    const cards = Object.entries(CARDS).map(([key, words]) => {
      const value = report.totals[key];
      const hidden = el("span", { class: "suppressed", title: `fewer than ${report.k} devices` }, "suppressed");
      return el(
        "div",
        { class: "card" },
        el("div", { class: "value" }, value === null ? hidden : fmt(value)),
        el("div", { class: "label" }, words),
      );
    });
    document.getElementById("totals").replaceChildren(...cards);
  }

  /** An offer's variants side by side; one under k devices hides them all (the server says so with nulls). */
  function renderVariants(report) {
    const box = document.getElementById("variants");
    box.hidden = !report.variants;
    if (!report.variants) return;
    const cell = (v) => (v === null ? el("td", { class: "suppressed" }, "suppressed") : el("td", { class: "num" }, fmt(v)));
    document.querySelector("#variant-table tbody").replaceChildren(
      ...report.variants.map((v) =>
        el("tr", { "data-variant": v.variant_id }, el("td", {}, v.variant_id), cell(v.impressions), cell(v.reach), cell(v.clicks),
          v.ctr === null ? el("td", { class: "suppressed" }, "–") : el("td", { class: "num" }, `${(v.ctr * 100).toFixed(2)} %`)),
      ),
    );
  }

  function chart(id, config) {
    if (state.charts[id]) state.charts[id].destroy();
    state.charts[id] = new Chart(document.getElementById(id), config);
    return state.charts[id];
  }

  /** For an offer: its visit rate against the devices held out from it, with the interval in plain words. */
  async function renderLift(params) {
    const box = document.getElementById("lift");
    if (!params.get("offer_id")) {
      box.replaceChildren();
      return;
    }
    const lift = await api(`/v1/reports/lift?offer_id=${encodeURIComponent(params.get("offer_id"))}&from=${params.get("from")}&to=${params.get("to")}`);
    const rate = (arm) => (arm.rate === null ? "suppressed" : `${(100 * arm.rate).toFixed(1)} %`);
    const detail = lift.holdout_pct
      ? `shown ${rate(lift.exposed)} visited · held out ${rate(lift.control)} visited · holdout ${lift.holdout_pct} %` +
        (lift.p_value === null ? "" : ` · p = ${lift.p_value.toPrecision(2)}`)
      : lift.in_words;
    box.replaceChildren(
      el(
        "div",
        { class: "card lift", id: "lift-card" },
        el("div", { class: "value" }, lift.holdout_pct ? lift.in_words : "—"),
        el("div", { class: "label" }, `lift within ${lift.window_days} days · ${detail}`),
      ),
    );
  }

  /** Whether a period has anything to draw: a figure above zero, or one suppressed (there was traffic). */
  function hasData(row) {
    return row.suppressed.length > 0 || COLUMNS.slice(1).some(([key]) => typeof row[key] === "number" && row[key] > 0);
  }

  function renderCharts(report) {
    // the chart starts at the first period with data: a new campaign's window is mostly empty days before it
    const first = report.rows.findIndex(hasData);
    const rows = first > 0 ? report.rows.slice(first) : report.rows;
    document.getElementById("chart-note").textContent =
      first > 0 ? `Drawn from ${rows[0].period}: nothing before it in this window (the table lists every ${report.granularity}).` : "";
    const labels = rows.map((r) => r.period);
    chart("reach-chart", {
      type: "bar",
      data: {
        labels,
        datasets: [
          { type: "bar", label: "impressions", data: rows.map((r) => r.impressions), backgroundColor: "#93c5fd" },
          { type: "line", label: "reach (devices)", data: rows.map((r) => r.reach), borderColor: "#1d4ed8", backgroundColor: "#1d4ed8", spanGaps: false },
        ],
      },
      options: { animation: false, responsive: true, maintainAspectRatio: false, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
    const histogram = BUCKETS.map((b) => report.rows.reduce((acc, r) => acc + ((r.frequency && r.frequency[b]) || 0), 0));
    chart("frequency-chart", {
      type: "bar",
      data: { labels: BUCKETS.map((b) => BUCKET_WORDS[b]), datasets: [{ label: "devices", data: histogram, backgroundColor: "#a78bfa" }] },
      options: { animation: false, responsive: true, maintainAspectRatio: false, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
    window.geotarget.charts = state.charts;
  }

  function renderTable(report) {
    const table = document.getElementById("report-table");
    const head = [...COLUMNS.map(([, label]) => label), ...BUCKETS.map((b) => `freq ${b}`)];
    table.tHead.replaceChildren(el("tr", {}, head.map((h) => el("th", {}, h))));
    // null is either suppressed (named in row.suppressed) or undefined (average frequency of nobody).
    const cell = (row, value, key, group = key) =>
      value === null && row.suppressed.includes(group)
        ? el("td", { class: "suppressed", title: `suppressed: fewer than ${report.k} devices` }, "suppressed")
        : el("td", { class: key === "period" ? "" : "num" }, value === null ? "–" : fmt(value));
    table.tBodies[0].replaceChildren(
      ...report.rows.map((row) =>
        el(
          "tr",
          {},
          COLUMNS.map(([key]) => cell(row, row[key], key)),
          BUCKETS.map((b) => cell(row, row.frequency ? row.frequency[b] : null, b, "frequency")),
        ),
      ),
    );

    const hidden = report.rows.filter((r) => r.suppressed.length).length;
    document.getElementById("suppression-note").textContent = hidden
      ? `${hidden} ${report.granularity}(s) have figures from fewer than ${report.k} devices; they are shown as “suppressed” to protect privacy.`
      : `Figures from fewer than ${report.k} devices would be suppressed; none are.`;
  }

  async function downloadCsv() {
    const params = new URLSearchParams(state.query);
    params.set("format", "csv");
    try {
      const { data } = await api(`/v1/reports/reach?${params}`, { raw: true });
      const url = URL.createObjectURL(new Blob([data], { type: "text/csv" }));
      const scope = [...params.entries()][0].join("-");
      const link = el("a", { href: url, download: `reach-${scope}-${params.get("from")}-${params.get("to")}.csv` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      document.getElementById("report-error").textContent = err.message;
    }
  }

  function colour(t) {
    // light yellow -> red, t in [0, 1]
    const hue = 55 - 55 * t;
    return `hsl(${hue}, 95%, ${70 - 25 * t}%)`;
  }

  async function renderHeatmap() {
    const fence = document.getElementById("heat-fence").value;
    const ticket = ++state.heatTicket;
    const legend = document.getElementById("heat-legend");
    if (!fence || !state.query) {
      if (state.heat) state.heat.remove();
      legend.textContent = "";
      return;
    }
    const params = new URLSearchParams({ geofence_id: fence, res: document.getElementById("heat-res").value, from: state.query.get("from"), to: state.query.get("to") });
    const metric = document.getElementById("heat-metric").value;
    try {
      const data = await api(`/v1/reports/heatmap?${params}`);
      if (ticket !== state.heatTicket) return; // answers can arrive out of order: only the newest is drawn
      if (state.heat) state.heat.remove();
      const values = data.features.filter((f) => !f.properties.suppressed).map((f) => f.properties[metric]);
      const max = Math.max(1, ...values);
      state.heat = L.geoJSON(data, {
        style: (f) =>
          f.properties.suppressed
            ? { className: "heat-cell heat-suppressed", color: "#6b7280", weight: 1, dashArray: "2 3", fillColor: "#9ca3af", fillOpacity: 0.25 }
            : { className: "heat-cell", color: "#7f1d1d", weight: 0.5, fillColor: colour(f.properties[metric] / max), fillOpacity: 0.6 },
        onEachFeature: (f, layer) => {
          const p = f.properties;
          layer.bindTooltip(
            p.suppressed ? `cell ${p.cell}: suppressed (fewer than ${data.properties.k} devices)` : `cell ${p.cell}: ${fmt(p.pings)} pings, ${fmt(p.devices)} devices, ${fmt(p.visitors)} visitors`,
          );
        },
      }).addTo(state.map);
      const fenceShape = data.properties.fence;
      const outline = { className: "heat-fence", color: "#1d4ed8", weight: 2, fill: false, interactive: false };
      (fenceShape.geometry.type === "Point"
        ? L.circle([fenceShape.geometry.coordinates[1], fenceShape.geometry.coordinates[0]], { ...outline, radius: fenceShape.radius_m })
        : L.geoJSON(fenceShape.geometry, { style: () => outline })
      ).addTo(state.heat);
      const hidden = data.features.length - values.length;
      legend.textContent = data.features.length
        ? `${data.features.length} cells; darkest = ${fmt(max)} ${metric}; ${hidden} grey dashed cell(s) suppressed (fewer than ${data.properties.k} devices).`
        : "No pings around this fence in the range.";
      state.map.fitBounds(state.heat.getBounds(), { maxZoom: 17 });
      state.map.getContainer().dataset.fence = fence;
    } catch (err) {
      legend.textContent = `Heatmap unavailable: ${err.message}`;
    }
  }

  async function whoAmI() {
    state.scopes = await api("/v1/reports/scopes");
    return state.scopes.role === "adops" ? "ad ops: all merchants" : `merchant: ${state.scopes.merchants.map((m) => m.name).join("")}`;

  }

  async function start() {
    scopeOptions(state.scopes);
    renderHeatChoices();
    const today = new Date();
    const from = new Date(today.getTime() - 29 * 86_400_000);
    document.getElementById("to").value = isoDay(today);
    document.getElementById("from").value = isoDay(from);
    if (!state.map) {
      state.map = GT.baseMap(document.getElementById("map"), [38.7115, -9.1305], 14);
      window.geotarget = { map: state.map, charts: state.charts };
    }
    state.map.invalidateSize();
    if (document.getElementById("scope").value) await run();
  }

  document.getElementById("query").addEventListener("submit", run);
  // a new scope, window or unit shows its report at once: Show is only needed to load the same one again
  document.getElementById("scope").addEventListener("change", () => { renderHeatChoices(); run(); });
  for (const id of ["from", "to", "granularity"]) document.getElementById(id).addEventListener("change", () => run());
  document.getElementById("csv").addEventListener("click", downloadCsv);
  for (const id of ["heat-fence", "heat-res", "heat-metric"]) document.getElementById(id).addEventListener("change", renderHeatmap);
  GT.login("geotarget.adopsKey", whoAmI, start);
})();
