// Flotilla funnel editor: forms over the funnel JSON document, live validation and a phone
// preview. No build step, no inline code (CSP). The document lives in memory; every edit is
// checked by POST /admin/funnels/validate and played by POST /admin/funnels/preview; Save sends
// it with PUT /admin/{kind}/instances/{id}. The format is described in docs/funnels.md.
(function () {
  "use strict";

  var DEBOUNCE_MS = 300;

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function api(method, url, body) {
    var headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRF-Token"] = csrf();
    return fetch(url, {
      method: method, credentials: "same-origin", headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) {
      return r.text().then(function (t) {
        var data = null;
        try { data = t ? JSON.parse(t) : null; } catch (e) { data = t; }
        return { ok: r.ok, status: r.status, data: data };
      });
    });
  }

  function detailMessage(res) {
    var d = res.data && res.data.detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) {
      return d.map(function (e) { return (e.loc || []).slice(1).join(" → ") + ": " + e.msg; }).join("; ");
    }
    if (res.status === 401) return "Your session has ended; sign in again.";
    if (res.status === 403) return "Your role may not do this.";
    if (res.status === 413) return "The funnel is too large to send.";
    return "Request failed (" + res.status + ").";
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === "text") node.textContent = v;
      else if (k === "className") node.className = v;
      else node.setAttribute(k, v === true ? "" : v);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }

  function getAt(obj, path) {
    for (var i = 0; i < path.length; i++) {
      if (obj === null || obj === undefined) return undefined;
      obj = obj[path[i]];
    }
    return obj;
  }

  function setAt(obj, path, value) {
    for (var i = 0; i < path.length - 1; i++) obj = obj[path[i]];
    obj[path[path.length - 1]] = value;
  }

  function isObj(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }

  // *bold* as <b>, the rest as text (never HTML).
  function richText(text) {
    var span = el("span", { className: "t" });
    String(text || "").split(/(\*[^*\n]+\*)/).forEach(function (part) {
      if (/^\*[^*\n]+\*$/.test(part)) span.appendChild(el("b", { text: part.slice(1, -1) }));
      else if (part) span.appendChild(document.createTextNode(part));
    });
    return span;
  }

  // The actions a button may take, built from the document (shared/funnel/callbacks.py).
  function actionChoices(doc) {
    var out = [["nav:menu", "Main menu"], ["nav:back", "Back to the previous screen"]];
    var faq = doc.faq;
    if (isObj(faq)) {
      out.push(["faq:menu", "FAQ: list of topics"]);
      (faq.sections || []).forEach(function (s) {
        if (!isObj(s)) return;
        out.push(["faq:cat_" + s.id, "FAQ topic: " + (s.title || s.id)]);
        (s.items || []).forEach(function (it) {
          if (isObj(it)) out.push(["faq:" + it.key, "FAQ answer: " + (it.title || it.key)]);
        });
      });
    }
    if (isObj(doc.quiz)) out.push(["sales:quiz", "Start the quiz"]);
    if (isObj(doc.manager)) out.push(["sales:manager", "Talk to a person"]);
    if (isObj(doc.discovery)) out.push(["sales:discovery", "Start the questions (discovery)"]);
    if (isObj(doc.tz)) out.push(["tz:start", "Start the specification questionnaire"]);
    if (isObj(doc.gpu_audit)) out.push(["sales:gpu", "GPU check"]);
    Object.keys(isObj(doc.screens) ? doc.screens : {}).forEach(function (id) {
      out.push(["sales:show:" + id, "Show screen: " + id]);
    });
    Object.keys(isObj(doc.segments) ? doc.segments : {}).forEach(function (id) {
      out.push(["sales:seg:" + id, "Segment: " + ((doc.segments[id] || {}).title || id)]);
    });
    if (isObj(doc.payment)) {
      Object.keys(isObj(doc.products) ? doc.products : {}).forEach(function (id) {
        out.push(["sales:order:" + id, "Order: " + ((doc.products[id] || {}).title || id)]);
      });
    }
    return out.filter(function (a) { return a[0].indexOf("undefined") < 0; });
  }

  function uniqueId(base, taken) {
    var n = 1;
    while (taken.indexOf(base + "_" + n) >= 0) n++;
    return base + "_" + n;
  }

  function Editor(root) {
    this.root = root;
    this.kind = root.dataset.kind;
    this.botId = root.dataset.botId;
    this.canWrite = !!root.dataset.canWrite;
    var raw = root.querySelector("#funnel-doc");
    try { this.doc = JSON.parse(raw ? raw.textContent : "{}"); } catch (e) { this.doc = {}; }
    if (!isObj(this.doc)) this.doc = {};
    this.errors = [];
    this.valid = true;
    this.jsonBroken = "";
    this.mode = "form";
    this.steps = [];
    this.timer = null;
    this.seq = 0;
    this.formBox = root.querySelector(".fe-form");
    this.jsonBox = root.querySelector(".fe-json");
    this.jsonArea = this.jsonBox.querySelector("textarea");
    this.sim = root.querySelector(".fe-sim");
    this.bind();
    this.restart();
    this.renderForm();
    this.changed(true);
  }

  Editor.prototype.bind = function () {
    var self = this;
    this.root.addEventListener("input", function (ev) {
      var t = ev.target;
      if (t === self.jsonArea) { self.fromJson(); return; }
      if (t.dataset && t.dataset.path) { self.fieldInput(t); }
    });
    this.root.addEventListener("click", function (ev) {
      var b = ev.target.closest("button");
      if (!b || !self.root.contains(b)) return;
      if (b.dataset.feMode) { self.setMode(b.dataset.feMode); return; }
      if (b.hasAttribute("data-fe-save")) { self.save(); return; }
      if (b.hasAttribute("data-fe-load-default")) { self.loadDefault(); return; }
      if (b.hasAttribute("data-fe-load-template")) { self.loadTemplate(); return; }
      if (b.hasAttribute("data-fe-sim-send")) { self.typed(); return; }
      if (b.hasAttribute("data-fe-sim-restart")) { self.restart(); self.runPreview(); return; }
      if (b.dataset.simPayload) {
        self.steps.push({ text: b.dataset.simTitle || "", payload: b.dataset.simPayload });
        self.runPreview();
        return;
      }
      if (b.dataset.op && self.canWrite) { self.op(b.dataset.op, JSON.parse(b.dataset.target)); }
    });
    this.root.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && ev.target.hasAttribute && ev.target.hasAttribute("data-fe-sim-input")) {
        ev.preventDefault(); self.typed();
      }
    });
  };

  // ---- the document ----------------------------------------------------------------------

  Editor.prototype.fieldInput = function (input) {
    var path = JSON.parse(input.dataset.path);
    var kind = input.dataset.kind || "text";
    var value = input.value;
    if (kind === "int") {
      value = /^\s*-?\d+\s*$/.test(value) ? parseInt(value, 10) : value;
    } else if (kind === "lines") {
      value = value.split("\n").map(function (s) { return s.trim(); }).filter(Boolean);
    } else if (kind === "csv") {
      value = value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
    }
    setAt(this.doc, path, value);
    this.changed(false);
  };

  Editor.prototype.op = function (op, target) {
    var doc = this.doc;
    var list = target.length ? getAt(doc, target) : null;
    var i;
    if (op === "add-button") {
      var at = target.length ? target : ["welcome"];
      if (!Array.isArray(getAt(doc, at))) setAt(doc, at, []);
      getAt(doc, at).push({ title: "New button", action: at[0] === "welcome" && isObj(doc.faq) ? "faq:menu" : "nav:menu" });
    } else if (op === "remove" || op === "up" || op === "down") {
      i = target[target.length - 1];
      list = getAt(doc, target.slice(0, -1));
      if (!Array.isArray(list)) return;
      if (op === "remove") list.splice(i, 1);
      else {
        var j = op === "up" ? i - 1 : i + 1;
        if (j < 0 || j >= list.length) return;
        var tmp = list[i]; list[i] = list[j]; list[j] = tmp;
      }
    } else if (op === "add-faq") {
      doc.faq = {
        menu_text: "*Frequently asked questions*\nPick a topic:", section_text: "*{section}*\nPick a question:",
        sections: [{ id: "general", title: "General", description: "", items: [
          { key: "hours", title: "Opening hours", question: "When are you open?", answer: "We are open every day.", keywords: ["open", "hours"], buttons: [] }
        ] }]
      };
    } else if (op === "add-section") {
      var ids = (doc.faq.sections || []).map(function (s) { return s.id; });
      doc.faq.sections.push({ id: uniqueId("section", ids), title: "New topic", description: "", items: [
        { key: uniqueId("question", this.faqKeys()), title: "New question", question: "New question?", answer: "The answer.", keywords: [], buttons: [] }
      ] });
    } else if (op === "add-item") {
      list.push({ key: uniqueId("question", this.faqKeys()), title: "New question", question: "New question?", answer: "The answer.", keywords: [], buttons: [] });
    } else if (op === "add-step") {
      var stepIds = list.map(function (s) { return s.id; });
      list.push({ id: uniqueId("step", stepIds), text: "Your question to the customer?" });
    } else {
      return;
    }
    this.renderForm();
    this.changed(false);
  };

  Editor.prototype.faqKeys = function () {
    var keys = [];
    ((this.doc.faq || {}).sections || []).forEach(function (s) {
      (s.items || []).forEach(function (it) { keys.push(it.key); });
    });
    return keys;
  };

  Editor.prototype.changed = function (now) {
    var self = this;
    this.root.querySelector(".fe-save-msg").textContent = "";
    if (this.mode === "form" && !now) this.jsonArea.value = JSON.stringify(this.doc, null, 2);
    clearTimeout(this.timer);
    this.setStatus("Checking…", "");
    this.timer = setTimeout(function () { self.validate(); }, now ? 0 : DEBOUNCE_MS);
  };

  Editor.prototype.validate = function () {
    var self = this;
    var seq = ++this.seq;
    if (this.jsonBroken) { this.showErrors([], this.jsonBroken); return Promise.resolve(false); }
    return api("POST", "/admin/funnels/validate", this.doc).then(function (res) {
      if (seq !== self.seq) return self.valid;
      if (!res.ok) { self.showErrors([], detailMessage(res)); return false; }
      self.showErrors(res.data.errors || [], "");
      if (res.data.ok) self.runPreview();
      return !!res.data.ok;
    }, function () {
      self.showErrors([], "The orchestrator did not answer; the funnel could not be checked.");
      return false;
    });
  };

  // ---- validation messages -----------------------------------------------------------------

  function describe(loc) {
    var names = { welcome: "Main menu button", words: "Greeting word", sections: "FAQ topic",
      items: "question", steps: "step", buttons: "button" };
    var out = [];
    for (var i = 0; i < loc.length; i++) {
      var p = loc[i];
      if (typeof p === "number") continue;
      var next = loc[i + 1];
      var name = names[p] || String(p).replace(/_/g, " ");
      out.push(typeof next === "number" ? name + " " + (next + 1) : name);
    }
    return out.join(" → ") || "The funnel";
  }

  Editor.prototype.showErrors = function (errors, general) {
    var self = this;
    this.errors = errors;
    this.valid = !errors.length && !general;
    this.root.querySelectorAll(".fe-field-error").forEach(function (n) { n.remove(); });
    this.root.querySelectorAll(".fe-bad").forEach(function (n) { n.classList.remove("fe-bad"); });
    var unplaced = [];
    errors.forEach(function (e) {
      var loc = e.loc || [];
      var placed = false;
      if (self.mode === "form") {
        for (var n = loc.length; n > 0 && !placed; n--) {
          var key = loc.slice(0, n).join(".");
          var target = self.formBox.querySelector('[data-loc="' + CSS.escape(key) + '"]');
          if (target) {
            target.classList.add("fe-bad");
            var msg = n === loc.length ? e.msg : describe(loc.slice(n - 1)) + ": " + e.msg;
            var note = el("div", { className: "field-error fe-field-error", role: "alert", "data-error-for": loc.join("."), text: msg });
            target.appendChild(note);
            placed = true;
          }
        }
      }
      if (!placed) unplaced.push(e);
    });
    var box = this.root.querySelector(".fe-problems");
    box.textContent = "";
    if (general || errors.length) {
      var count = errors.length;
      box.appendChild(el("b", { text: general ? general : (count === 1 ? "1 problem" : count + " problems") + " to fix before saving" + (this.mode === "form" && count > unplaced.length ? " (marked below)." : ".") }));
      if (unplaced.length) {
        var ul = el("ul");
        unplaced.forEach(function (e) { ul.appendChild(el("li", { text: describe(e.loc || []) + ": " + e.msg })); });
        box.appendChild(ul);
      }
      box.hidden = false;
      this.setStatus("Not valid yet", "bad");
      if (!this.sim.querySelector(".fe-sim-stale")) {
        this.sim.insertBefore(el("div", { className: "sys error fe-sim-stale", "data-testid": "fe-sim-stale",
          text: "The preview shows the last valid version: fix the problems to update it." }), this.sim.firstChild);
      }
    } else {
      box.hidden = true;
      this.setStatus("Valid", "good");
      var stale = this.sim.querySelector(".fe-sim-stale");
      if (stale) stale.remove();
    }
  };

  Editor.prototype.setStatus = function (text, cls) {
    var s = this.root.querySelector(".fe-status");
    s.textContent = text;
    s.className = "fe-status small " + (cls || "muted");
  };

  // ---- Advanced: JSON ------------------------------------------------------------------------

  Editor.prototype.setMode = function (mode) {
    this.mode = mode;
    this.root.querySelectorAll("[data-fe-mode]").forEach(function (b) {
      b.classList.toggle("active", b.dataset.feMode === mode);
    });
    if (mode === "json") {
      this.jsonArea.value = JSON.stringify(this.doc, null, 2);
      this.jsonBroken = "";
      this.formBox.hidden = true;
      this.jsonBox.hidden = false;
      this.jsonArea.readOnly = !this.canWrite;
    } else {
      if (this.jsonBroken) {
        this.setStatus("Fix the JSON first", "bad");
        this.mode = "json";
        this.root.querySelectorAll("[data-fe-mode]").forEach(function (b) { b.classList.toggle("active", b.dataset.feMode === "json"); });
        return;
      }
      this.formBox.hidden = false;
      this.jsonBox.hidden = true;
      this.renderForm();
    }
    this.changed(true);
  };

  Editor.prototype.fromJson = function () {
    var state = this.root.querySelector('[data-testid="fe-json-state"]');
    try {
      var v = JSON.parse(this.jsonArea.value);
      if (!isObj(v)) throw new Error("a funnel is a JSON object {...}");
      this.doc = v;
      this.jsonBroken = "";
      state.textContent = "valid JSON"; state.className = "json-state good";
    } catch (e) {
      this.jsonBroken = "Not valid JSON: " + e.message;
      state.textContent = this.jsonBroken; state.className = "json-state bad";
    }
    this.changed(false);
  };

  // ---- the form --------------------------------------------------------------------------

  Editor.prototype.field = function (label, path, opts) {
    opts = opts || {};
    var value = getAt(this.doc, path);
    var kind = opts.kind || "text";
    var id = "fe-" + path.join("-");
    var input;
    var attrs = { id: id, "data-path": JSON.stringify(path), "data-kind": kind, "aria-label": opts.aria || label,
      disabled: !this.canWrite, placeholder: opts.placeholder || null, spellcheck: "true" };
    if (kind === "lines") {
      attrs.rows = opts.rows || 4; attrs.className = "prose";
      input = el("textarea", attrs);
      input.value = Array.isArray(value) ? value.join("\n") : "";
    } else if (kind === "csv") {
      attrs.type = "text";
      input = el("input", attrs);
      input.value = Array.isArray(value) ? value.join(", ") : "";
    } else if (kind === "textarea") {
      attrs.rows = opts.rows || 3; attrs.className = "prose";
      input = el("textarea", attrs);
      input.value = value === undefined || value === null ? "" : String(value);
    } else if (kind === "action") {
      input = el("select", attrs);
      var choices = actionChoices(this.doc);
      var known = choices.some(function (c) { return c[0] === value; });
      if (!known) choices.unshift([value || "", (value || "(none)") + " — not in this funnel"]);
      choices.forEach(function (c) {
        var o = el("option", { value: c[0], text: c[1] });
        if (c[0] === value) o.selected = true;
        input.appendChild(o);
      });
    } else {
      attrs.type = kind === "int" ? "number" : "text";
      input = el("input", attrs);
      input.value = value === undefined || value === null ? "" : String(value);
    }
    var wrap = el("div", { className: "fe-field" + (opts.wide ? " wide" : ""), "data-loc": path.join(".") }, [
      el("label", { "for": id, text: label }), input,
      opts.help ? el("div", { className: "help", text: opts.help }) : null
    ]);
    return wrap;
  };

  Editor.prototype.rowTools = function (path, length) {
    if (!this.canWrite) return null;
    var i = path[path.length - 1];
    var t = JSON.stringify(path);
    return el("div", { className: "fe-tools" }, [
      el("button", { type: "button", "data-op": "up", "data-target": t, title: "Move up", "aria-label": "Move up", disabled: i === 0, text: "↑" }),
      el("button", { type: "button", "data-op": "down", "data-target": t, title: "Move down", "aria-label": "Move down", disabled: i === length - 1, text: "↓" }),
      el("button", { type: "button", className: "danger", "data-op": "remove", "data-target": t, title: "Remove", "aria-label": "Remove", text: "✕" })
    ]);
  };

  Editor.prototype.addButton = function (label, op, target, testid) {
    if (!this.canWrite) return null;
    return el("button", { type: "button", "data-op": op, "data-target": JSON.stringify(target || []), "data-testid": testid || null, text: label });
  };

  Editor.prototype.buttonRows = function (path, name, testid) {
    var self = this;
    var list = getAt(this.doc, path);
    list = Array.isArray(list) ? list : [];
    return list.map(function (b, i) {
      var p = path.concat([i]);
      return el("div", { className: "fe-row", "data-loc": p.join("."), "data-testid": testid || null }, [
        el("span", { className: "fe-num", text: String(i + 1) }),
        self.field("Button title", p.concat(["title"]), { aria: name + " " + (i + 1) + " title" }),
        self.field("What it does", p.concat(["action"]), { kind: "action", aria: name + " " + (i + 1) + " action" }),
        self.rowTools(p, list.length)
      ]);
    });
  };

  function card(title, help, children, loc) {
    return el("details", { className: "card fe-card", open: true, "data-loc": loc || null }, [
      el("summary", { className: "card-head" }, [el("h2", { text: title })]),
      el("div", { className: "card-body" }, [help ? el("p", { className: "muted small", text: help }) : null].concat(children))
    ]);
  }

  Editor.prototype.renderForm = function () {
    var doc = this.doc;
    var self = this;
    var box = this.formBox;
    box.textContent = "";
    if (!isObj(doc.texts)) doc.texts = {};
    if (!isObj(doc.greetings)) doc.greetings = { words: [], max_extra_words: 2 };

    // Greeting
    box.appendChild(card("Greeting", "A customer who writes one of these words (in any case, with or without punctuation) gets the welcome message with the main-menu buttons.", [
      this.field("Greeting words (one per line)", ["greetings", "words"], { kind: "lines", rows: 4 }),
      this.field("Extra words allowed", ["greetings", "max_extra_words"], { kind: "int", help: "“hi there” still greets with 1 or more; a longer message is treated as a question (0–10)." }),
      this.field("Welcome message", ["texts", "welcome"], { kind: "textarea", rows: 5, help: "{name} is the customer's name; *stars* make text bold." })
    ], "greetings"));

    // Main menu
    var rows = this.buttonRows(["welcome"], "Button", "fe-menu-button");
    rows.push(this.addButton("+ Add a button", "add-button", [], "fe-add-button"));
    box.appendChild(card("Main menu buttons", "Shown under the welcome message and whenever the customer goes back to the main menu. WhatsApp shows up to three buttons at a time; more are paged.", rows, "welcome"));

    // Screens (sales:show:{id}) and the "talk to a person" screen
    var screenChildren = [];
    if (isObj(doc.manager)) {
      screenChildren.push(el("div", { className: "fe-group", "data-loc": "manager" }, [
        el("div", { className: "fe-subhead" }, [el("b", { text: "Talk to a person" })]),
        this.field("Text", ["manager", "text"], { kind: "textarea", rows: 3, aria: "Talk to a person text", help: "Shown for “Talk to a person”; the conversation is flagged for a colleague." })
      ].concat(this.buttonRows(["manager", "buttons"], "Talk to a person button")).concat([
        this.addButton("+ Add a button", "add-button", ["manager", "buttons"])
      ])));
    }
    Object.keys(isObj(doc.screens) ? doc.screens : {}).forEach(function (id) {
      var sp = ["screens", id];
      screenChildren.push(el("div", { className: "fe-group", "data-loc": sp.join(".") }, [
        el("div", { className: "fe-subhead" }, [el("b", { text: "Screen “" + id + "”" })]),
        self.field("Text", sp.concat(["text"]), { kind: "textarea", rows: 3, aria: "Screen " + id + " text" })
      ].concat(self.buttonRows(sp.concat(["buttons"]), "Screen " + id + " button")).concat([
        self.addButton("+ Add a button", "add-button", sp.concat(["buttons"]))
      ])));
    });
    if (screenChildren.length) {
      box.appendChild(card("Screens", "Messages a button can show (“Show screen: …”), each with its own buttons. New screens are added in Advanced: JSON.", screenChildren));
    }

    // FAQ
    var faqChildren = [];
    if (!isObj(doc.faq)) {
      faqChildren.push(el("p", { className: "muted", text: "This funnel has no FAQ." }));
      faqChildren.push(this.addButton("+ Add an FAQ", "add-faq", []));
    } else {
      faqChildren.push(this.field("Text above the topics", ["faq", "menu_text"], { kind: "textarea", rows: 2 }));
      faqChildren.push(this.field("Text above a topic's questions", ["faq", "section_text"], { kind: "textarea", rows: 2, help: "{section} is the topic's title." }));
      var sections = Array.isArray(doc.faq.sections) ? doc.faq.sections : [];
      sections.forEach(function (s, si) {
        var base = ["faq", "sections", si];
        var items = Array.isArray(s.items) ? s.items : [];
        var itemBoxes = items.map(function (it, ii) {
          var ip = base.concat(["items", ii]);
          return el("div", { className: "fe-sub", "data-loc": ip.join(".") }, [
            el("div", { className: "fe-subhead" }, [el("b", { text: "Question " + (ii + 1) }), self.rowTools(ip, items.length)]),
            self.field("Title (list row)", ip.concat(["title"])),
            self.field("Id", ip.concat(["key"]), { help: "Lower-case letters, digits and _; buttons point to it as faq:{id}." }),
            self.field("Question", ip.concat(["question"])),
            self.field("Answer", ip.concat(["answer"]), { kind: "textarea", rows: 3 }),
            self.field("Keywords (comma separated)", ip.concat(["keywords"]), { kind: "csv", help: "Word beginnings that find this answer in a typed message, e.g. price, cost." })
          ]);
        });
        faqChildren.push(el("div", { className: "fe-group", "data-loc": base.join(".") }, [
          el("div", { className: "fe-subhead" }, [el("b", { text: "Topic " + (si + 1) + ": " + (s.title || "") }), self.rowTools(base, sections.length)]),
          self.field("Topic title", base.concat(["title"])),
          self.field("Id", base.concat(["id"]), { help: "Lower-case letters, digits and _; buttons open it as faq:cat_{id}." }),
          self.field("Description", base.concat(["description"]))
        ].concat(itemBoxes).concat([self.addButton("+ Add a question", "add-item", base.concat(["items"]))])));
      });
      faqChildren.push(this.addButton("+ Add a topic", "add-section", []));
    }
    box.appendChild(card("Frequently asked questions", "Topics with questions and answers; the customer picks them from a list, or types a question whose keywords match.", faqChildren, "faq"));

    // Free-text steps
    var stepChildren = [];
    if (isObj(doc.discovery)) {
      var steps = Array.isArray(doc.discovery.steps) ? doc.discovery.steps : [];
      stepChildren.push(el("h3", { text: "Discovery questions" }));
      stepChildren.push(this.field("Introduction", ["discovery", "intro"], { kind: "textarea", rows: 2 }));
      steps.forEach(function (s, i) {
        var p = ["discovery", "steps", i];
        stepChildren.push(el("div", { className: "fe-row", "data-loc": p.join(".") }, [
          el("span", { className: "fe-num", text: String(i + 1) }),
          self.field("Id", p.concat(["id"])),
          self.field("Question", p.concat(["text"]), { kind: "textarea", rows: 2, wide: true }),
          self.rowTools(p, steps.length)
        ]));
      });
      stepChildren.push(this.addButton("+ Add a question", "add-step", ["discovery", "steps"]));
      stepChildren.push(this.field("After the last answer", ["discovery", "done"], { kind: "textarea", rows: 2 }));
    }
    if (isObj(doc.tz) && Array.isArray(doc.tz.steps)) {
      stepChildren.push(el("h3", { text: "Specification questionnaire" }));
      stepChildren.push(this.field("Introduction", ["tz", "intro"], { kind: "textarea", rows: 2 }));
      doc.tz.steps.forEach(function (s, i) {
        var p = ["tz", "steps", i];
        stepChildren.push(el("div", { className: "fe-row", "data-loc": p.join(".") }, [
          el("span", { className: "fe-num", text: String(i + 1) }),
          self.field("Label", p.concat(["label"])),
          self.field(s.kind === "text" ? "Question (typed answer)" : "Question (" + s.kind + ", options in Advanced: JSON)", p.concat(["text"]), { kind: "textarea", rows: 2, wide: true })
        ]));
      });
    }
    if (!stepChildren.length) stepChildren.push(el("p", { className: "muted", text: "This funnel asks no free-text questions." }));
    box.appendChild(card("Questions the bot asks", "Steps where the bot asks and the customer answers in their own words.", stepChildren));

    // Other texts
    var textFields = [
      ["menu", "Main menu text", "Above the main-menu buttons when the customer goes back to it."],
      ["stale", "An old button was pressed", ""],
      ["text_expected", "A photo or sticker instead of an answer", ""],
      ["anonymous_name", "{name} when the name is unknown", ""],
      ["list_button", "Button that opens a list", ""],
      ["back", "“Back” button", ""], ["main_menu", "“Main menu” button", ""],
      ["cancel", "“Cancel” button", ""], ["skip", "“Skip” button", ""],
      ["navigation", "Title of the navigation rows", ""]
    ];
    var texts = textFields.map(function (t) {
      return self.field(t[1], ["texts", t[0]], { kind: t[0] === "menu" || t[0] === "stale" ? "textarea" : "text", rows: 2, help: t[2] });
    });
    texts.push(this.field("Words that leave a question (one per line)", ["cancel_words"], { kind: "lines", rows: 3 }));
    box.appendChild(card("Other texts", "Texts the bot needs around the menus.", texts, "texts"));
    box.appendChild(el("p", { className: "muted small", text: "The quiz, segments, new screens, prices and payment are edited in Advanced: JSON." }));
    if (this.errors.length) this.showErrors(this.errors, "");
  };

  // ---- preview -----------------------------------------------------------------------------

  Editor.prototype.restart = function () {
    var words = (this.doc.greetings || {}).words;
    this.steps = [{ text: Array.isArray(words) && words.length ? String(words[0]) : "hi" }];
  };

  Editor.prototype.typed = function () {
    var input = this.root.querySelector("[data-fe-sim-input]");
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    this.steps.push({ text: text });
    this.runPreview();
  };

  Editor.prototype.runPreview = function () {
    var self = this;
    if (!this.valid) return;
    var body = { funnel: this.doc, kind: this.kind, bot_id: this.botId, messages: this.steps.slice(-50) };
    api("POST", "/admin/funnels/preview", body).then(function (res) {
      if (!res.ok) { self.simNote(detailMessage(res), true); return; }
      self.renderSim(res.data.turns || []);
    }, function () { self.simNote("The orchestrator did not answer.", true); });
  };

  Editor.prototype.simNote = function (text, error) {
    this.sim.textContent = "";
    this.sim.appendChild(el("div", { className: "sys" + (error ? " error" : ""), text: text }));
  };

  Editor.prototype.renderSim = function (turns) {
    var sim = this.sim;
    sim.textContent = "";
    turns.forEach(function (turn) {
      sim.appendChild(el("div", { className: "bubble out", "data-testid": "fe-customer-msg" }, [el("span", { className: "t", text: turn.text || turn.payload })]));
      (turn.replies || []).forEach(function (r) {
        var msg = el("div", { className: "wa-msg", "data-testid": "fe-bot-reply" }, [el("div", { className: "bubble" }, [richText(r.text)])]);
        if (r.buttons && r.buttons.length) {
          msg.appendChild(el("div", { className: "wa-buttons" }, r.buttons.map(function (b) {
            return el("button", { type: "button", className: "wa-btn", "data-sim-payload": b.id, "data-sim-title": b.title, text: b.title });
          })));
        }
        if (r.sections) {
          var rows = el("div", { className: "wa-rows" });
          r.sections.forEach(function (s) {
            if (s.title) rows.appendChild(el("div", { className: "sec", text: s.title }));
            s.rows.forEach(function (row) {
              rows.appendChild(el("button", { type: "button", className: "wa-row", "data-sim-payload": row.id, "data-sim-title": row.title }, [
                row.title, row.description ? el("span", { className: "d", text: row.description }) : null
              ]));
            });
          });
          msg.appendChild(el("details", { className: "wa-list", open: true }, [el("summary", { className: "wa-btn", text: "☰ " + r.button }), rows]));
        }
        sim.appendChild(msg);
      });
      if (turn.needs_llm) {
        sim.appendChild(el("div", { className: "sys", text: "No funnel step takes this message: the bot's AI would answer it from its knowledge." }));
      }
    });
    var thread = sim.closest(".thread");
    if (thread) thread.scrollTop = thread.scrollHeight;
  };

  // ---- saving ------------------------------------------------------------------------------

  Editor.prototype.saveMsg = function (text, ok, testid) {
    var box = this.root.querySelector(".fe-save-msg");
    box.textContent = "";
    box.appendChild(el("div", { className: "alert " + (ok ? "ok" : "error"), role: ok ? "status" : "alert",
      "data-testid": testid || (ok ? "saved" : "save-refused"), text: text }));
  };

  Editor.prototype.save = function () {
    var self = this;
    if (!this.canWrite) return;
    clearTimeout(this.timer);
    this.validate().then(function (ok) {
      if (!ok) {
        self.saveMsg("Not saved: fix the problems marked in red first.", false);
        return;
      }
      var url = "/admin/" + encodeURIComponent(self.kind) + "/instances/" + encodeURIComponent(self.botId);
      api("PUT", url, { funnel: self.doc }).then(function (res) {
        if (res.ok) self.saveMsg("Saved. A running bot uses the new funnel at once.", true);
        else self.saveMsg("Not saved: " + detailMessage(res), false);
      }, function () { self.saveMsg("Not saved: the orchestrator did not answer.", false); });
    });
  };

  Editor.prototype.replaceDoc = function (doc, what) {
    this.doc = doc;
    this.jsonArea.value = JSON.stringify(this.doc, null, 2);
    this.jsonBroken = "";
    this.restart();
    if (this.mode === "form") this.renderForm();
    this.changed(true);
    this.saveMsg(what + " is loaded into the editor. Save to use it.", true, "fe-loaded");
  };

  Editor.prototype.loadDefault = function () {
    var self = this;
    api("GET", "/admin/funnels/default").then(function (res) {
      if (!res.ok || !isObj(res.data)) { self.saveMsg("The built-in funnel could not be loaded: " + detailMessage(res), false, "fe-load-failed"); return; }
      self.replaceDoc(res.data, "The built-in funnel");
    });
  };

  // A template filled with the bot's business values (POST /admin/templates/{id}/preview).
  Editor.prototype.loadTemplate = function () {
    var self = this;
    var select = this.root.querySelector("[data-fe-template]");
    var raw = this.root.querySelector("#funnel-business");
    var business = {};
    try { business = JSON.parse(raw ? raw.textContent : "{}") || {}; } catch (e) { business = {}; }
    var title = select.options[select.selectedIndex] ? select.options[select.selectedIndex].text : select.value;
    api("POST", "/admin/templates/" + encodeURIComponent(select.value) + "/preview", { business: business }).then(function (res) {
      if (!res.ok || !res.data || !isObj(res.data.funnel)) { self.saveMsg("The template could not be loaded: " + detailMessage(res), false, "fe-load-failed"); return; }
      self.replaceDoc(res.data.funnel, "The template “" + title + "”");
    });
  };

  function scan() {
    document.querySelectorAll("[data-funnel-editor]").forEach(function (root) {
      if (root.dataset.ready) return;
      root.dataset.ready = "1";
      root.funnelEditor = new Editor(root);
    });
  }
  document.addEventListener("DOMContentLoaded", scan);
  document.addEventListener("htmx:afterSettle", scan);
  if (document.readyState !== "loading") scan();
})();
