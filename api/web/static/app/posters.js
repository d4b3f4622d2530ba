/* An offer's poster: its title, text, image, store and the QR code of its signed link, laid out to print on A4
   or A5 (everything else on the page is hidden in print), with the QR code to download as SVG or PNG. */
"use strict";

(() => {
  const { api, setStatus } = GT;
  const state = { offer: null, urls: [] };

  function forget() {
    state.urls.forEach((url) => URL.revokeObjectURL(url));
    state.urls = [];
  }

  function blobUrl(blob) {
    const url = URL.createObjectURL(blob);
    state.urls.push(url);
    return url;
  }

  function paper() {
    const size = document.getElementById("poster-paper").value;
    document.getElementById("poster-page-size").textContent = `@page { size: ${size}; margin: 12mm; }`;
    document.getElementById("poster-sheet").dataset.paper = size;
  }

  async function draw() {
    const offer = state.offer;
    const store = document.getElementById("poster-store");
    const fence = store.value;
    forget();
    const path = `/v1/offers/${encodeURIComponent(offer.id)}/qr?geofence_id=${encodeURIComponent(fence)}`;
    try {
      const svg = await api(`${path}&format=svg&size=800`, { blob: true });
      const png = await api(`${path}&format=png&size=1200`, { blob: true });
      const link = svg.headers.get("Geotarget-Poster-Link");
      document.getElementById("poster-qr").src = blobUrl(svg.data);
      document.getElementById("poster-link").textContent = link;
      document.getElementById("poster-store-name").textContent = store.options[store.selectedIndex].text;
      for (const [id, blob, kind] of [["poster-svg", svg.data, "svg"], ["poster-png", png.data, "png"]]) {
        const anchor = document.getElementById(id);
        anchor.href = blobUrl(blob);
        anchor.download = `poster-${offer.title.replace(/[^\w-]+/g, "-").slice(0, 40)}.${kind}`;
      }
      document.getElementById("poster-sheet").dataset.link = link;
    } catch (err) {
      setStatus(`The poster could not be made: ${err.message}`, "bad");
    }
  }

  /** Show the poster of ``offer`` for one of ``stores`` ([id, name] pairs: the fences it is on). */
  async function open(offer, stores) {
    if (!stores.length) {
      setStatus("This offer is on no store yet: give it a fence first.", "bad");
      return;
    }
    state.offer = offer;
    document.getElementById("poster-title").textContent = offer.title;
    document.getElementById("poster-body").textContent = offer.body || "";
    const image = document.getElementById("poster-image");
    image.hidden = !offer.image_url;
    if (offer.image_url) image.src = offer.image_url;
    const select = document.getElementById("poster-store");
    select.replaceChildren(...stores.map(([id, name]) => GT.el("option", { value: id }, name)));
    paper();
    document.getElementById("poster").hidden = false;
    document.body.classList.add("with-poster");
    await draw();
  }

  function close() {
    document.getElementById("poster").hidden = true;
    document.body.classList.remove("with-poster");
    delete document.getElementById("poster-sheet").dataset.link;
    forget();
  }

  document.getElementById("poster-store").addEventListener("change", draw);
  document.getElementById("poster-paper").addEventListener("change", paper);
  document.getElementById("poster-print").addEventListener("click", () => window.print());
  document.getElementById("poster-close").addEventListener("click", close);
  GT.posters = { open };
})();
