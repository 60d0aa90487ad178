// Flotilla admin UI: the few behaviours htmx attributes do not cover. No build step.
(function () {
  "use strict";

  // JSON fields: say at once whether the text parses (the server checks again on save).
  function checkJson(area) {
    var out = document.getElementById(area.id + "-state");
    if (!out) return;
    var text = area.value.trim();
    if (!text) { out.textContent = area.dataset.nullable ? "empty: the default is used" : ""; out.className = "json-state"; return; }
    try {
      var v = JSON.parse(text);
      if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error("must be a JSON object ({...})");
      out.textContent = "valid JSON"; out.className = "json-state good";
    } catch (e) {
      out.textContent = "not valid JSON: " + e.message; out.className = "json-state bad";
    }
  }
  document.addEventListener("input", function (ev) {
    if (ev.target.matches && ev.target.matches("textarea[data-json]")) checkJson(ev.target);
  });

  // A masked secret is selected whole on focus, so typing replaces it.
  document.addEventListener("focusin", function (ev) {
    if (ev.target.matches && ev.target.matches("input[data-secret]")) ev.target.select();
  });

  // "Load the default funnel" fills the editor from the server.
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest && ev.target.closest("[data-load-into]");
    if (!btn) return;
    ev.preventDefault();
    var target = document.getElementById(btn.dataset.loadInto);
    fetch(btn.dataset.url, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (t) {
      target.value = t; checkJson(target); target.focus();
    });
  });

  // Rate-limit presets fill the two fields (saved with the form).
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest && ev.target.closest("[data-preset-count]");
    if (!btn) return;
    ev.preventDefault();
    var count = document.getElementById("f-rate_limit_count");
    var hours = document.getElementById("f-rate_limit_hours");
    if (count) count.value = btn.dataset.presetCount;
    if (hours) hours.value = btn.dataset.presetHours;
  });

  function stickToBottom(el, force) {
    if (el && (force || el.dataset.stick !== "no")) el.scrollTop = el.scrollHeight;
  }
  // Keep the log and chats scrolled to the newest line unless the reader scrolled up.
  document.addEventListener("scroll", function (ev) {
    var el = ev.target;
    if (el.classList && (el.classList.contains("log") || el.classList.contains("messages") || el.classList.contains("thread"))) {
      el.dataset.stick = el.scrollHeight - el.scrollTop - el.clientHeight < 40 ? "yes" : "no";
    }
  }, true);

  // Bubbles of the test chat are ordered by time (a reply may arrive before its question's answer).
  function sortThread(box) {
    var items = Array.prototype.slice.call(box.children);
    items.sort(function (a, b) { return parseFloat(a.dataset.ts || 0) - parseFloat(b.dataset.ts || 0); });
    items.forEach(function (i) { box.appendChild(i); });
  }

  // The test chat keeps its customer per bot while the browser tab lives (sessionStorage):
  // the Test chat tab link carries it, and a chat opened without one gets it back.
  function simKey(bot) { return "flotilla-sim-to:" + bot; }
  function keepSimCustomer() {
    var store;
    try { store = window.sessionStorage; } catch (e) { return; }
    if (!store) return;
    var phone = document.querySelector("[data-sim-bot]");
    if (phone) {
      var key = simKey(phone.dataset.simBot);
      var kept = store.getItem(key);
      if (!phone.dataset.simChosen && kept && kept !== phone.dataset.simTo) {
        var url = new URL(window.location.href);
        url.searchParams.set("to", kept);
        window.location.replace(url.toString());
        return;
      }
      store.setItem(key, phone.dataset.simTo);
    }
    document.querySelectorAll("a[data-tab=chat]").forEach(function (a) {
      var m = a.getAttribute("href").match(/^\/bots\/([^/]+)\/([^/?]+)\/chat/);
      if (!m) return;
      var kept = store.getItem(simKey(m[1] + "/" + decodeURIComponent(m[2])));
      if (kept) a.setAttribute("href", m[0] + "?to=" + encodeURIComponent(kept));
    });
  }

  function afterSwap() {
    keepSimCustomer();
    document.querySelectorAll(".log, .messages").forEach(function (el) { stickToBottom(el, false); });
    var box = document.getElementById("sim-msgs");
    if (box) { sortThread(box); stickToBottom(box.closest(".thread"), true); }
    document.querySelectorAll("textarea[data-json]").forEach(checkJson);
  }
  // Every htmx request carries the session's CSRF token (the server refuses writes without it).
  document.addEventListener("htmx:configRequest", function (ev) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta && meta.content) ev.detail.headers["X-CSRF-Token"] = meta.content;
  });

  // A poller with data-poll-while="checkbox-id" asks only while that box is ticked (live tail).
  document.addEventListener("htmx:beforeRequest", function (ev) {
    var el = ev.detail.elt;
    if (!el || !el.dataset || !el.dataset.pollWhile) return;
    var box = document.getElementById(el.dataset.pollWhile);
    if (!box || !box.checked) ev.preventDefault();
    // A log line opened to read its raw JSON stays open: the tail waits until it is closed.
    else if (el.querySelector && el.querySelector("details[open]")) ev.preventDefault();
  });

  // A form with data-clear-on-success="field" empties that field once its request succeeded.
  document.addEventListener("htmx:afterRequest", function (ev) {
    var form = ev.target.closest && ev.target.closest("form[data-clear-on-success]");
    if (!form || !ev.detail.successful || ev.detail.elt !== form) return;
    var input = form.querySelector('[name="' + form.dataset.clearOnSuccess + '"]');
    if (input) input.value = "";
  });

  document.addEventListener("htmx:afterSettle", afterSwap);
  document.addEventListener("htmx:oobAfterSwap", afterSwap);
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".log, .messages").forEach(function (el) { stickToBottom(el, true); });
    afterSwap();
  });
})();
