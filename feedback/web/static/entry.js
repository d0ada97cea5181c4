// Keyed entry of paper forms and hotline calls (/manage/entry): the keyboard alone drives it.
// Paper: the serial (a scanner types the QR text and Enter), then one step per question (number keys
// answer and move on, 0 is no answer, text takes Enter), the date of service (kept from the form
// before; Enter saves and goes back to the serial). Keys typed while a form loads or saves are kept
// and replayed, so a fast clerk never loses one. Hotline: start a call, read the script, key answers.
(function () {
  "use strict";
  var app = document.getElementById("entry-app");
  if (!app) { return; }
  var S = JSON.parse(app.getAttribute("data-strings") || "{}");
  var hotline = app.getAttribute("data-channel") === "hotline";
  var pageLang = (document.documentElement.lang || "en").slice(0, 2);
  var $ = function (id) { return document.getElementById(id); };
  var form = $("entry-form");
  var serialInput = $("entry-serial");
  var info = $("entry-form-info");
  var list = $("entry-questions");
  var contactBox = $("entry-contact");
  var contactInput = $("entry-contact-input");
  var consentRow = $("entry-consent-row");
  var consent = $("entry-consent");
  var dateRow = $("entry-date-row");
  var dateInput = $("entry-date");
  var dateShown = $("entry-date-shown");
  var status = $("entry-status");
  var alertBox = $("entry-alert");
  var conflictBox = $("entry-conflict");
  var lastSaved = $("entry-last");
  var countEl = $("entry-count");
  var startButton = $("call-start");

  var state = "idle";  // idle | loading | answering | saving
  var queue = [];      // keys typed while busy, replayed in order
  var current = null;  // {form, questions, answers, lang}
  var lastDate = "";
  var savedCount = 0;
  try { lastDate = window.sessionStorage.getItem("fb-entry-date") || ""; } catch (e) { lastDate = ""; }

  function fmt(text, values) {
    return String(text || "").replace(/%\((\w+)\)s/g, function (whole, key) {
      return values && values[key] !== undefined && values[key] !== null ? String(values[key]) : whole;
    });
  }
  function textIn(texts, lang) {
    if (!texts) { return ""; }
    return texts[lang] || texts[pageLang] || texts.en || texts[Object.keys(texts)[0]] || "";
  }
  function say(text) {
    status.textContent = "";
    window.setTimeout(function () { status.textContent = text; }, 30);
  }
  function showAlert(text) {
    alertBox.textContent = text || "";
    alertBox.hidden = !text;
  }
  function busy() { return state === "loading" || state === "saving"; }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function safeId(key) { return "q-" + String(key).replace(/[^A-Za-z0-9_-]/g, "_"); }

  // -- dates ---------------------------------------------------------------------------------------
  function validDay(y, m, d) {
    if (m < 1 || m > 12 || d < 1 || d > 31) { return null; }
    var t = new Date(Date.UTC(y, m - 1, d));
    if (t.getUTCFullYear() !== y || t.getUTCMonth() !== m - 1 || t.getUTCDate() !== d) { return null; }
    return y + "-" + String(m).padStart(2, "0") + "-" + String(d).padStart(2, "0");
  }
  function parseDate(text, today) {
    var d = String(text || "").replace(/\D/g, "");
    var year = today ? +today.slice(0, 4) : new Date().getFullYear();
    if (d.length === 8) {
      return validDay(+d.slice(4), +d.slice(2, 4), +d.slice(0, 2)) || validDay(+d.slice(0, 4), +d.slice(4, 6), +d.slice(6));
    }
    if (d.length === 6) { return validDay(2000 + +d.slice(4), +d.slice(2, 4), +d.slice(0, 2)); }
    if (d.length === 4) { return validDay(year, +d.slice(2, 4), +d.slice(0, 2)); }
    return null;
  }
  function typedForm(iso) { return iso ? iso.slice(8, 10) + "." + iso.slice(5, 7) + "." + iso.slice(0, 4) : ""; }
  function readable(iso) {
    try {
      return new Intl.DateTimeFormat(document.documentElement.lang || "en", { dateStyle: "long", timeZone: "UTC" })
        .format(new Date(iso + "T00:00:00Z"));
    } catch (e) { return iso; }
  }
  function showDate() {
    if (!dateInput) { return; }
    var iso = parseDate(dateInput.value, current && current.form.today);
    dateShown.textContent = iso ? readable(iso) : (dateInput.value ? S.bad_date : "");
  }

  // -- building a form ----------------------------------------------------------------------------
  function visible(q) {
    if (!q.show_if) { return true; }
    var value = current.answers[q.show_if.question];
    if (typeof value !== "number") { return false; }
    if (q.show_if.min !== null && q.show_if.min !== undefined && value < q.show_if.min) { return false; }
    return !(q.show_if.max !== null && q.show_if.max !== undefined && value > q.show_if.max);
  }
  function choices(q, lang) {
    if (q.kind === "rating") {
      var labels = q.labels ? (q.labels[lang] || q.labels[pageLang] || q.labels.en) : null;
      var out = [];
      for (var i = 1; i <= q.scale; i += 1) { out.push({ value: i, label: labels ? labels[i - 1] : "" }); }
      return out;
    }
    return q.options.map(function (option) { return { value: option.key, label: textIn(option.text, lang) }; });
  }
  function buildQuestion(q, number, total) {
    var lang = hotline ? current.lang : pageLang;
    var id = safeId(q.key);
    var item = el("li", { "class": "entry-q", "data-key": q.key });
    var described = [];
    var label = el("label", { "for": id }, number + ". " + textIn(q.text, pageLang));
    item.appendChild(label);
    if (hotline) {
      var script = el("p", { "class": "entry-script", lang: current.lang, id: id + "-script" }, textIn(q.text, current.lang));
      if (q.kind === "rating") { script.textContent += " " + fmt(current.script.scale, { n: q.scale }); }
      item.appendChild(script);
      described.push(id + "-script");
    }
    var input = el("input", { id: id, autocomplete: "off", "data-kind": q.kind, "data-key": q.key });
    if (q.kind === "rating" || q.kind === "choice") { input.setAttribute("inputmode", "numeric"); }
    item.appendChild(input);
    if (q.kind === "rating" || q.kind === "choice") {
      var options = el("ul", { "class": "entry-options", id: id + "-options" });
      if (hotline) { options.setAttribute("lang", current.lang); }
      choices(q, lang).forEach(function (choice, index) {
        var text = (index + 1) + (choice.label ? " · " + choice.label : "");
        options.appendChild(el("li", { "data-value": String(choice.value) }, text));
      });
      item.appendChild(options);
      described.push(id + "-options");
      var hint = q.kind === "choice" && q.multiple ? S.many_hint : fmt(S.choose_hint, { n: choices(q, lang).length }) + "; " + S.skip_hint;
      item.appendChild(el("p", { "class": "hint", id: id + "-hint" }, hint));
    } else {
      item.appendChild(el("p", { "class": "hint", id: id + "-hint" }, S.text_hint));
    }
    described.push(id + "-hint");
    item.appendChild(el("p", { "class": "field-error", id: id + "-error" }));
    described.push(id + "-error");
    input.setAttribute("aria-describedby", described.join(" "));
    input.setAttribute("aria-label", fmt(S.question_of, { n: number, total: total }) + ": " + textIn(q.text, pageLang));
    input.fbQuestion = q;
    return item;
  }
  function render(found) {
    var questions = found.survey.questions.filter(function (q) { return q.kind !== "contact"; });
    var withContact = hotline || found.survey.questions.some(function (q) { return q.kind === "contact"; });
    current = {
      form: found,
      questions: questions,
      answers: {},
      lang: found.lang,
      contactKey: (found.survey.questions.filter(function (q) { return q.kind === "contact"; })[0] || {}).key,
      script: hotline ? scriptFor(found) : null
    };
    list.textContent = "";
    questions.forEach(function (q, index) { list.appendChild(buildQuestion(q, index + 1, questions.length)); });
    contactBox.hidden = !withContact;
    contactInput.value = "";
    consent.checked = false;
    consentRow.hidden = true;
    clearErrors();
    if (hotline) {
      $("call-serial").textContent = found.serial;
      setScript("entry-script-greeting", fmt(current.script.greeting, { unit: current.script.unit }));
      setScript("entry-script-callback", current.script.callback);
      setScript("entry-script-thanks", current.script.thanks);
    } else {
      dateInput.value = typedForm(lastDate);
      showDate();
    }
    info.textContent = fmt(S.loaded, {
      serial: found.serial, touchpoint: found.touchpoint.name, survey: found.survey.slug,
      version: found.survey.version, lang: found.lang
    });
    applyRules();
  }
  function setScript(id, text) {
    var node = $(id);
    if (!node) { return; }
    node.textContent = text || "";
    node.setAttribute("lang", current.lang);
    node.hidden = !text;
  }
  function scriptFor(found) {
    var option = $("call-touchpoint").selectedOptions[0];
    var scripts = JSON.parse(option.getAttribute("data-script") || "{}");
    return scripts[found.lang] || scripts.en || {};
  }
  function applyRules() {
    Array.prototype.forEach.call(list.children, function (item) {
      var input = item.querySelector("input");
      var shown = visible(input.fbQuestion);
      item.classList.toggle("hidden-by-rule", !shown);
      if (!shown && input.fbQuestion.key in current.answers) {
        delete current.answers[input.fbQuestion.key];
        input.value = "";
        markChosen(input, []);
      }
    });
  }
  function steps() {
    var found = [];
    Array.prototype.forEach.call(list.children, function (item) {
      if (!item.classList.contains("hidden-by-rule")) { found.push(item.querySelector("input")); }
    });
    if (!contactBox.hidden) {
      found.push(contactInput);
      if (!consentRow.hidden) { found.push(consent); }
    }
    if (!hotline) { found.push(dateInput); }
    return found;
  }
  function focusStep(node) {
    if (!node) { return; }
    node.focus();
    if (node.select && node !== consent) { node.select(); }
  }
  function advance(from) {
    var all = steps();
    var index = all.indexOf(from);
    if (index === all.length - 1) { save(); return; }
    focusStep(all[index + 1]);
  }
  function back(from) {
    var all = steps();
    var index = all.indexOf(from);
    if (index > 0) { focusStep(all[index - 1]); } else if (serialInput) { focusStep(serialInput); }
  }

  // -- answers ---------------------------------------------------------------------------------------
  function markChosen(input, values) {
    var options = document.getElementById(input.id + "-options");
    if (!options) { return; }
    Array.prototype.forEach.call(options.children, function (li) {
      li.classList.toggle("chosen", values.indexOf(li.getAttribute("data-value")) >= 0);
    });
  }
  function describe(q, value) {
    if (value === undefined || value === null) { return S.no_answer; }
    var lang = hotline ? current.lang : pageLang;
    var all = choices(q, lang);
    var values = Array.isArray(value) ? value : [value];
    return values.map(function (v) {
      for (var i = 0; i < all.length; i += 1) {
        if (all[i].value === v) { return (i + 1) + (all[i].label ? " · " + all[i].label : ""); }
      }
      return String(v);
    }).join(", ");
  }
  function setAnswer(input, value) {
    var q = input.fbQuestion;
    if (value === null || (Array.isArray(value) && !value.length)) {
      delete current.answers[q.key];
    } else {
      current.answers[q.key] = value;
    }
    input.value = describe(q, current.answers[q.key]);
    markChosen(input, [].concat(current.answers[q.key] === undefined ? [] : current.answers[q.key]).map(String));
    applyRules();
  }
  function chooseDigit(input, key) {
    var q = input.fbQuestion;
    var all = choices(q, pageLang);
    var n = all.length;
    var digit = +key;
    if (input.fbPending) {
      input.fbPending = false;
      if (10 + digit <= n) { pick(input, 10 + digit); return; }
      pick(input, 1);
      if (!q.multiple) { handle(key, document.activeElement, true, false); return; }
    }
    if (digit === 0) {
      setAnswer(input, null);
      advance(input);
      return;
    }
    if (n >= 10 && digit === 1) { input.fbPending = true; input.value = "1…"; return; }
    if (digit <= n) { pick(input, digit); }
  }
  function pick(input, number) {
    var q = input.fbQuestion;
    var value = choices(q, pageLang)[number - 1].value;
    if (q.kind === "choice" && q.multiple) {
      var chosen = (current.answers[q.key] || []).slice();
      var at = chosen.indexOf(value);
      if (at >= 0) { chosen.splice(at, 1); } else { chosen.push(value); }
      setAnswer(input, chosen);
      return;
    }
    setAnswer(input, value);
    advance(input);
  }
  function finishPending(input) {
    if (input && input.fbPending) { input.fbPending = false; pick(input, 1); return true; }
    return false;
  }

  // -- keys -----------------------------------------------------------------------------------------
  function insert(target, key) {
    if (key === "Backspace") { target.value = target.value.slice(0, -1); } else { target.value += key; }
    if (target === dateInput) { showDate(); }
  }
  function handle(key, target, replayed, shift) {
    if (target === serialInput) {
      if (key === "Enter") { load(serialInput.value); return true; }
      if (replayed && (key.length === 1 || key === "Backspace")) { insert(target, key); return true; }
      return false;
    }
    if (!current || state !== "answering") { return false; }
    if (key === "Tab") {
      if (finishPending(target)) { return true; }
      if (shift) { back(target); } else { advance(target); }
      return true;
    }
    var kind = target.getAttribute && target.getAttribute("data-kind");
    if (kind === "rating" || kind === "choice") {
      if (/^[0-9]$/.test(key)) { chooseDigit(target, key); return true; }
      if (key === "Enter") { if (!finishPending(target)) { advance(target); } return true; }
      if (key === "Backspace") { setAnswer(target, null); return true; }
      if (key === "ArrowUp") { back(target); return true; }
      if (key === "ArrowDown") { advance(target); return true; }
      return key.length === 1;  // nothing else is typed into a numbered answer
    }
    if (target === consent) {
      if (key === "1" || key === "y" || key === "Y") { consent.checked = true; advance(consent); return true; }
      if (key === "0" || key === "n" || key === "N") { consent.checked = false; advance(consent); return true; }
      if (key === "Enter") { advance(consent); return true; }
      return false;
    }
    if (target === contactInput) {
      if (key === "Enter") {
        consentRow.hidden = !contactInput.value.trim();
        advance(contactInput);
        return true;
      }
    } else if (target === dateInput) {
      if (key === "Enter") { save(); return true; }
    } else if (kind === "text") {
      if (key === "Enter") {
        var value = target.value.trim();
        if (value) { current.answers[target.fbQuestion.key] = value; } else { delete current.answers[target.fbQuestion.key]; }
        advance(target);
        return true;
      }
    } else {
      return false;
    }
    if (replayed && (key.length === 1 || key === "Backspace")) { insert(target, key); return true; }
    return false;
  }
  var QUEUED = /^(.|Enter|Tab|Backspace)$/;
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) { return; }
    if (busy()) {
      if (QUEUED.test(event.key)) { queue.push([event.key, event.shiftKey]); event.preventDefault(); }
      return;
    }
    if (!form.contains(event.target)) { return; }
    if (handle(event.key, event.target, false, event.shiftKey)) { event.preventDefault(); }
  }, true);
  // Text that arrives without a key press (an input method, an on-screen keyboard, pasted text): kept
  // like keys while the screen is busy, and never typed into a numbered answer.
  document.addEventListener("beforeinput", function (event) {
    if (!event.data || event.inputType.indexOf("insert") !== 0) { return; }
    if (busy()) {
      Array.prototype.forEach.call(event.data, function (ch) { queue.push([ch, false]); });
      event.preventDefault();
      return;
    }
    var kind = event.target.getAttribute && event.target.getAttribute("data-kind");
    if (kind === "rating" || kind === "choice") { event.preventDefault(); }
  }, true);
  function drain() {
    while (queue.length && !busy()) {
      var next = queue.shift();
      handle(next[0], document.activeElement, true, next[1]);
    }
  }
  form.addEventListener("submit", function (event) { event.preventDefault(); if (!busy() && current) { save(); } });
  form.addEventListener("input", function (event) {
    if (event.target === dateInput) { showDate(); }
    if (event.target === contactInput) { consentRow.hidden = !contactInput.value.trim(); }
  });
  form.addEventListener("focusin", function (event) {
    Array.prototype.forEach.call(list.children, function (item) { item.classList.toggle("current", item.contains(event.target)); });
  });

  // -- the server -----------------------------------------------------------------------------------
  function clearErrors() {
    Array.prototype.forEach.call(document.querySelectorAll("#entry-form .field-error"), function (node) { node.textContent = ""; });
    showAlert("");
  }
  function fieldError(field, detail) {
    var target = null;
    var holder = null;
    if (field && field.indexOf("answers.") === 0) {
      var key = field.slice(8);
      target = document.getElementById(safeId(key));
      holder = target && document.getElementById(target.id + "-error");
    } else if (field === "occurred_on" && !hotline) {
      target = dateInput; holder = $("entry-date-error");
    } else if (field === "contact" || field === "consent") {
      target = field === "consent" && !consentRow.hidden ? consent : contactInput; holder = $("entry-contact-error");
    } else if (field === "serial" && serialInput) {
      target = serialInput; holder = $("entry-serial-error");
    }
    if (holder) { holder.textContent = detail; }
    showAlert(fmt(S.error, { detail: detail }));
    if (target) {
      if (target.closest && target.closest(".hidden-by-rule")) { target.closest(".entry-q").classList.remove("hidden-by-rule"); }
      focusStep(target);
    }
  }
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } })
      .then(function (reply) { return reply.json().then(function (body) { return { status: reply.status, body: body }; }); });
  }
  function load(typed) {
    typed = String(typed || "").trim();
    if (!typed) { return; }
    clearErrors();
    conflictBox.hidden = true;
    state = "loading";
    say(fmt(S.loading, { serial: typed }));
    getJSON("/api/v1/paper-forms/" + encodeURIComponent(typed)).then(function (reply) {
      if (reply.status !== 200) {
        state = "idle";
        queue = [];
        serialInput.value = typed;
        fieldError("serial", reply.body.detail || String(reply.status));
        return;
      }
      state = "answering";
      render(reply.body);
      say(info.textContent + (reply.body.entered ? " " + fmt(S.entered, { receipt: reply.body.entry.receipt }) : ""));
      focusStep(steps()[0]);
      drain();
    }).catch(function () {
      state = "idle";
      queue = [];
      showAlert(S.network);
    });
  }
  function payload() {
    var body = {
      serial: current.form.serial,
      answers: {},
      occurred_on: hotline ? current.form.today : parseDate(dateInput.value, current.form.today),
      channel: hotline ? "hotline" : "paper"
    };
    Object.keys(current.answers).forEach(function (key) { body.answers[key] = current.answers[key]; });
    current.questions.forEach(function (q) {
      var input = document.getElementById(safeId(q.key));
      if (q.kind === "text" && input && input.value.trim()) { body.answers[q.key] = input.value.trim(); }
    });
    if (!contactBox.hidden && contactInput.value.trim()) {
      body.contact = contactInput.value.trim();
      body.consent = consent.checked;
    }
    return body;
  }
  function save() {
    if (!current || state !== "answering") { return; }
    clearErrors();
    var body = payload();
    if (!hotline) {
      if (!body.occurred_on) { fieldError("occurred_on", S.bad_date); return; }
      if (body.occurred_on < current.form.printed_on || body.occurred_on > current.form.today) {
        fieldError("occurred_on", fmt(S.date_range, { first: readable(current.form.printed_on), last: readable(current.form.today) }));
        return;
      }
    }
    state = "saving";
    say(fmt(S.saving, { serial: body.serial }));
    window.fbManage.post("/api/v1/paper-entries", body).then(function (reply) {
      return reply.json().then(function (answer) { return { status: reply.status, body: answer }; });
    }).then(function (reply) {
      if (reply.status === 201 || reply.status === 200) {
        saved(body, reply.body, reply.status === 201 ? S.saved : S.duplicate);
      } else if (reply.status === 409) {
        saved(body, reply.body, S.conflict);
        showConflict(body, reply.body.review);
      } else {
        state = "answering";
        queue = [];
        fieldError(reply.body.field, reply.body.detail || String(reply.status));
      }
    }).catch(function () {
      state = "answering";
      queue = [];
      showAlert(S.network);
    });
  }
  function saved(body, answer, message) {
    if (!hotline) {
      lastDate = body.occurred_on;
      try { window.sessionStorage.setItem("fb-entry-date", lastDate); } catch (e) { /* private mode */ }
    }
    savedCount += 1;
    var text = fmt(hotline && message === S.saved ? S.call_saved : message,
      { serial: body.serial, receipt: answer.receipt, review: answer.review });
    lastSaved.textContent = text;
    countEl.textContent = String(savedCount);
    say(text);
    reset();
    current = null;
    state = "idle";
    if (hotline) { form.hidden = true; if (startButton) { startButton.focus(); } } else { focusStep(serialInput); }
    drain();
  }
  function reset() {
    list.textContent = "";
    info.textContent = "";
    contactInput.value = "";
    consent.checked = false;
    consentRow.hidden = true;
    if (serialInput) { serialInput.value = ""; }
    if (dateInput) { dateInput.value = typedForm(lastDate); showDate(); }
  }
  function showConflict(body, review) {
    var table = $("entry-conflict-table");
    table.textContent = "";
    $("entry-conflict-link").setAttribute("href", "/manage/entry/conflicts#review-" + review);
    getJSON("/api/v1/paper-forms/" + encodeURIComponent(body.serial)).then(function (reply) {
      if (reply.status !== 200 || !reply.body.entry) { conflictBox.hidden = false; return; }
      var head = el("tr");
      [S.question, S.stored, S.this_entry].forEach(function (text) { head.appendChild(el("th", { scope: "col" }, text)); });
      var thead = el("thead");
      thead.appendChild(head);
      table.appendChild(thead);
      var tbody = el("tbody");
      reply.body.survey.questions.forEach(function (q) {
        if (q.kind === "contact") { return; }
        var stored = reply.body.entry.answers[q.key];
        var mine = body.answers[q.key];
        var row = el("tr");
        row.appendChild(el("th", { scope: "row" }, textIn(q.text, pageLang)));
        row.appendChild(el("td", {}, q.kind === "text" ? (stored || S.no_answer) : describeFor(q, stored)));
        row.appendChild(el("td", {}, q.kind === "text" ? (mine || S.no_answer) : describeFor(q, mine)));
        tbody.appendChild(row);
      });
      var dates = el("tr");
      dates.appendChild(el("th", { scope: "row" }, S.date_of_service));
      dates.appendChild(el("td", {}, readable(reply.body.entry.occurred_on)));
      dates.appendChild(el("td", {}, readable(body.occurred_on)));
      tbody.appendChild(dates);
      table.appendChild(tbody);
      conflictBox.hidden = false;
    }).catch(function () { conflictBox.hidden = false; });
  }
  function describeFor(q, value) {
    if (value === undefined || value === null) { return S.no_answer; }
    var all = choices(q, pageLang);
    var values = Array.isArray(value) ? value : [value];
    return values.map(function (v) {
      for (var i = 0; i < all.length; i += 1) {
        if (all[i].value === v) { return (i + 1) + (all[i].label ? " · " + all[i].label : ""); }
      }
      return String(v);
    }).join(", ");
  }

  // -- the hotline --------------------------------------------------------------------------------------
  function languagesFor(option) {
    var allowed = JSON.parse(option.getAttribute("data-languages") || "[]");
    var select = $("call-lang");
    Array.prototype.forEach.call(select.options, function (choice) {
      choice.disabled = allowed.indexOf(choice.value) < 0;
    });
    select.value = option.getAttribute("data-lang");
  }
  if (hotline && startButton) {
    var touchpointSelect = $("call-touchpoint");
    languagesFor(touchpointSelect.selectedOptions[0]);
    touchpointSelect.addEventListener("change", function () { languagesFor(touchpointSelect.selectedOptions[0]); });
    startButton.addEventListener("click", function () {
      if (busy()) { return; }
      clearErrors();
      conflictBox.hidden = true;
      state = "loading";
      var token = touchpointSelect.value;
      window.fbManage.post("/api/v1/touchpoints/" + encodeURIComponent(token) + "/call-sheets", { lang: $("call-lang").value })
        .then(function (reply) { return reply.json().then(function (body) { return { status: reply.status, body: body }; }); })
        .then(function (reply) {
          if (reply.status !== 201) { state = "idle"; queue = []; showAlert(fmt(S.error, { detail: reply.body.detail })); return; }
          state = "answering";
          form.hidden = false;
          render(reply.body);
          say(fmt(S.call_started, { serial: reply.body.serial }));
          focusStep(steps()[0]);
          drain();
        })
        .catch(function () { state = "idle"; queue = []; showAlert(S.network); });
    });
    startButton.focus();
  } else if (serialInput) {
    if (dateInput) { dateInput.value = typedForm(lastDate); }
    serialInput.focus();
  }
})();
