/* The till: a merchant types the code a customer shows and sees at once whether it is good, and for which offer.
   Codes redeemed in this tab are listed (newest first); the server keeps the record either way. */
"use strict";

(() => {
  const { api, el } = GT;
  const KEPT = 20;

  function say(text, kind) {
    const node = document.getElementById("till-result");
    node.textContent = text;
    node.className = `status ${kind}`;
  }

  async function redeem(event) {
    event.preventDefault();
    const input = document.getElementById("till-code");
    const code = input.value.trim();
    input.classList.remove("invalid");
    say("", "");
    if (!code) {
      input.classList.add("invalid");
      say("Type the code the customer shows.", "bad");
      return;
    }
    try {
      const done = await api("/v1/redemptions", { method: "POST", json: { code } });
      const when = new Date(done.redeemed_at).toLocaleTimeString();
      const kind = done.impression_id ? "unique code" : "static code";
      say(`Good: “${done.offer.title}” (${kind}), redeemed at ${when}.`, "good");
      const log = document.getElementById("till-log");
      log.prepend(el("li", { "data-code": code }, el("strong", {}, code), el("span", { class: "meta" }, ` ${done.offer.title} · ${when}`)));
      while (log.children.length > KEPT) log.lastElementChild.remove();
      input.value = "";
    } catch (err) {
      input.classList.add("invalid");
      // 409: a unique code already used; 404: no offer of yours has it (or its offer was deleted)
      const words = err.status === 409 ? "Already redeemed" : err.status === 404 ? "Not a code of yours" : "Not redeemed";
      say(`${words}: ${err.message}`, "bad");
    }
    input.focus();
  }

  document.getElementById("till-form").addEventListener("submit", redeem);
})();
