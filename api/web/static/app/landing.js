/* A poster's page: draws the store (its fence) on a small map; everything else is in the HTML. */
"use strict";

(() => {
  const box = document.getElementById("store-map");
  if (!box) return;
  const store = JSON.parse(box.dataset.store);
  const map = GT.baseMap(box);
  const shape =
    store.geometry.type === "Point"
      ? L.circle([store.geometry.coordinates[1], store.geometry.coordinates[0]], { radius: store.radius_m })
      : L.geoJSON(store.geometry);
  shape.addTo(map);
  map.fitBounds(shape.getBounds(), { maxZoom: 17, padding: [20, 20] });
  window.geotarget = { map };
})();
