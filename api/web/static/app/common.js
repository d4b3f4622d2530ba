/* Shared by the pages: API calls with the session's key, the login form, and a base map whose tiles may fail. */
"use strict";

const GT = (() => {
  class ApiError extends Error {
    constructor(status, body) {
      const error = (body && body.error) || {};
      super(error.message || `HTTP ${status}`);
      this.status = status;
      this.code = error.code || "http_" + status;
      this.field = error.field || null;
    }
  }

  let storageKey = null;

  function key() {
    return storageKey ? sessionStorage.getItem(storageKey) : null;
  }

  /** Call the API with the tab's key. `json` sends a JSON body, `form` a FormData; answers parsed by type
      (`blob`: a successful answer as a Blob with its headers, for images and files). */
  async function api(path, { method = "GET", json, form, raw = false, blob = false } = {}) {
    const headers = { Authorization: `Bearer ${key()}` };
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form !== undefined) {
      body = form;
    }
    let response;
    try {
      response = await fetch(path, { method, headers, body });
    } catch (err) {
      throw new ApiError(0, { error: { code: "network", message: "the server cannot be reached" } });
    }
    if (response.status === 204) return null;
    if (blob && response.ok) return { data: await response.blob(), headers: response.headers }; // images, files
    const type = response.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await response.json() : await response.text();
    if (!response.ok) {
      if (response.status === 401) logout("Your key was not accepted. Log in again.");
      throw new ApiError(response.status, typeof data === "object" ? data : null);
    }
    return raw ? { data, type } : data;
  }

  function logout(message) {
    sessionStorage.removeItem(storageKey);
    document.getElementById("workspace").hidden = true;
    document.getElementById("login").hidden = false;
    document.getElementById("logout").hidden = true;
    document.getElementById("who").textContent = "";
    document.getElementById("login-error").textContent = message || "";
  }

  /** Show the login form until `check()` accepts the key, then call `ready(who)`. */
  function login(name, check, ready) {
    storageKey = name;
    const form = document.getElementById("login-form");
    const error = document.getElementById("login-error");
    async function enter() {
      try {
        const who = await check();
        document.getElementById("login").hidden = true;
        document.getElementById("workspace").hidden = false;
        document.getElementById("logout").hidden = false;
        document.getElementById("who").textContent = who;
        error.textContent = "";
        await ready();
      } catch (err) {
        const message = err.status === 403 ? "This key may not use this page." : err.message;
        logout(message);
      }
    }
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(storageKey, document.getElementById("login-key").value.trim());
      document.getElementById("login-key").value = "";
      enter();
    });
    document.getElementById("logout").addEventListener("click", () => {
      logout("");
      location.reload();
    });
    if (key()) enter();
  }

  /** A Leaflet map; when tiles fail to load it keeps working on a plain background and says so once. */
  function baseMap(element, center = [38.7115, -9.1305], zoom = 15) {
    const map = L.map(element, { zoomControl: true }).setView(center, zoom);
    const template = document.querySelector('meta[name="geotarget-tiles"]').content;
    if (template) {
      const tiles = L.tileLayer(template, {
        maxZoom: 19,
        attribution: '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
      });
      let failed = false;
      tiles.on("tileerror", () => {
        if (failed) return;
        failed = true;
        element.classList.add("tiles-unavailable");
        const note = L.control({ position: "bottomleft" });
        note.onAdd = () => {
          const div = L.DomUtil.create("div", "map-note");
          div.textContent = "Map tiles could not load: shapes are drawn on a plain background.";
          return div;
        };
        note.addTo(map);
      });
      tiles.addTo(map);
    } else {
      element.classList.add("tiles-unavailable");
    }
    return map;
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const numbers = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
  const fmt = (value) => (value === null || value === undefined ? "" : typeof value === "number" ? numbers.format(value) : String(value));

  function setStatus(message, kind = "") {
    const node = document.getElementById("status");
    node.textContent = message;
    node.className = `status ${kind}`;
  }

  return { api, login, baseMap, el, fmt, setStatus };
})();
