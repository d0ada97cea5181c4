// The kiosk tablet app: large faces at a counter; every tap reaches the server exactly once.
//
// Screens: enroll -> rating (resting) -> reasons -> thanks -> rating.  `<body data-kiosk-state>`.
// A retired touchpoint rests on `retired` instead of `rating`: no faces, no taps; the queue still
// drains and heartbeats go on.
// Every tap is committed to IndexedDB before anything else happens; a sync loop sends the ready
// ones in batches and removes them only once the server has acknowledged them.  A heartbeat loop
// reports health and hears back whether the touchpoint is retired; a long-poll loop waits for case
// invitations from the counter's software.
// Plain ES2017, no dependencies, no inline script or style (the CSP forbids both).
(function () {
  "use strict";

  var APP_VERSION = "1.0.4"; // keep equal to VERSION in sw.js: a new version ships a new shell cache
  var LANGS = ["vi", "ru", "zh", "en"];
  var ENDONYMS = { vi: "Tiếng Việt", ru: "Русский", zh: "中文", en: "English" };
  var HTML_LANG = { vi: "vi", ru: "ru", zh: "zh-Hans", en: "en" };
  var DEFAULT_SETTINGS = { thanks_seconds: 4, idle_seconds: 20, heartbeat_seconds: 60, sync_seconds: 5 };
  var BATCH = 100;
  var BACKOFF_MIN = 1000;
  var BACKOFF_MAX = 60000;
  var POLL_WAIT = 20;
  var INVITATION_TTL = 10 * 60 * 1000; // an invitation nobody answered does not label a later tap
  var DB_NAME = "feedback-kiosk";
  var DB_VERSION = 1;
  var SVG = "http://www.w3.org/2000/svg";

  // The app's folder (/kiosk/), from this script's own address: right even when the page was
  // opened as /kiosk without the slash.
  var BASE = new URL("./", (document.currentScript && document.currentScript.src) || document.baseURI);
  var API = new URL("../api/v1/kiosk/", BASE).href;

  // Face per common level 1..5 (as on the survey page): fill colour and mouth.
  var FACE_PARTS = {
    1: ["#d84a3a", "M12 29 Q20 21 28 29"],
    2: ["#ef8a3a", "M13 28 Q20 24 27 28"],
    3: ["#f2c230", "M13 26 L27 26"],
    4: ["#8cc152", "M13 24 Q20 29 27 24"],
    5: ["#3ca35a", "M11 23 Q20 33 29 23"]
  };

  var db = null;
  var token = null;
  var config = null; // {kiosk, lang, retired_at, survey, settings}
  var settings = Object.assign({}, DEFAULT_SETTINGS);
  var strings = null; // {lang: {key: text}}
  var lang = "vi";
  var state = null;
  var session = 0; // bumped on every enrollment change: stale loops stop
  var configStale = false;
  var updateReady = false;
  var pending = null; // the invitation for the next tap: {case_ref, service, officer, at}
  var current = null; // the tap on the reasons screen: {item, answers}
  var busy = false;
  var finishing = false;
  var timers = { thanks: 0, idle: 0, rest: 0, heartbeat: 0, sync: 0, config: 0 };
  var sync = { running: false, again: false, backoff: 0, retryAt: 0, offline: false, lastSync: null };
  var lastSeq = 0;
  var battery = null;
  var wakeLock = null;

  var $ = function (id) { return document.getElementById(id); };

  // ------------------------------------------------------------------ IndexedDB

  function openDb() {
    return new Promise(function (resolve, reject) {
      var request = indexedDB.open(DB_NAME, DB_VERSION);
      request.onupgradeneeded = function () {
        var database = request.result;
        if (!database.objectStoreNames.contains("kv")) database.createObjectStore("kv");
        if (!database.objectStoreNames.contains("queue")) {
          database.createObjectStore("queue", { keyPath: "id" }).createIndex("seq", "seq");
        }
        if (!database.objectStoreNames.contains("dead")) database.createObjectStore("dead", { keyPath: "id" });
      };
      request.onsuccess = function () {
        var database = request.result;
        database.onversionchange = function () { database.close(); location.reload(); };
        resolve(database);
      };
      request.onerror = function () { reject(request.error); };
    });
  }

  // One transaction; resolves only on its `complete` event (the data is on disk), with box.value.
  function run(stores, mode, body) {
    return new Promise(function (resolve, reject) {
      var tx = mode === "readwrite"
        ? db.transaction(stores, mode, { durability: "strict" })
        : db.transaction(stores, mode);
      var box = { value: undefined };
      tx.oncomplete = function () { resolve(box.value); };
      tx.onerror = function () { reject(tx.error); };
      tx.onabort = function () { reject(tx.error || new Error("transaction aborted")); };
      try {
        body(tx, box);
      } catch (error) {
        try { tx.abort(); } catch (ignored) { /* already finished */ }
        reject(error);
      }
    });
  }

  function kvGet(key) {
    return run("kv", "readonly", function (tx, box) {
      var request = tx.objectStore("kv").get(key);
      request.onsuccess = function () { box.value = request.result; };
    });
  }

  function kvPut(key, value) {
    return run("kv", "readwrite", function (tx) { tx.objectStore("kv").put(value, key); });
  }

  function kvDelete(key) {
    return run("kv", "readwrite", function (tx) { tx.objectStore("kv").delete(key); });
  }

  function putItem(item) {
    return run("queue", "readwrite", function (tx) { tx.objectStore("queue").put(item); });
  }

  // Finish a tap: its answers as they stand, and ready to send.
  function finishItem(id, answers, language) {
    return run("queue", "readwrite", function (tx) {
      var store = tx.objectStore("queue");
      var request = store.get(id);
      request.onsuccess = function () {
        var item = request.result;
        if (!item || item.ready) return; // already sent, or already finished
        item.answers = answers;
        item.lang = language;
        item.ready = true;
        store.put(item);
      };
    });
  }

  // After a crash or reload, a tap left on the reasons screen is sent as it is.
  function readyAll() {
    return run("queue", "readwrite", function (tx) {
      var request = tx.objectStore("queue").openCursor();
      request.onsuccess = function () {
        var cursor = request.result;
        if (!cursor) return;
        if (!cursor.value.ready) {
          var item = cursor.value;
          item.ready = true;
          cursor.update(item);
        }
        cursor.continue();
      };
    });
  }

  function readyBatch(limit) {
    return run("queue", "readonly", function (tx, box) {
      box.value = [];
      var request = tx.objectStore("queue").index("seq").openCursor();
      request.onsuccess = function () {
        var cursor = request.result;
        if (!cursor || box.value.length >= limit) return;
        if (cursor.value.ready) box.value.push(cursor.value);
        cursor.continue();
      };
    });
  }

  function lastQueuedSeq() {
    return run("queue", "readonly", function (tx, box) {
      box.value = 0;
      var request = tx.objectStore("queue").index("seq").openCursor(null, "prev");
      request.onsuccess = function () { if (request.result) box.value = request.result.value.seq; };
    });
  }

  // Acknowledged items leave the queue; rejected ones move to the dead letters, in one transaction.
  function applyResults(batch, results) {
    var byId = {};
    batch.forEach(function (item) { byId[item.id] = item; });
    return run(["queue", "dead"], "readwrite", function (tx) {
      var queue = tx.objectStore("queue");
      var dead = tx.objectStore("dead");
      (results || []).forEach(function (result) {
        var item = result && byId[result.id];
        if (!item) return;
        if (result.status === "stored" || result.status === "duplicate") {
          queue.delete(item.id);
        } else if (result.status === "rejected") {
          dead.put(Object.assign({}, item, {
            reason: result.reason || null, field: result.field || null, rejected_at: new Date().toISOString()
          }));
          queue.delete(item.id);
        }
      });
    });
  }

  function counts() {
    return run(["queue", "dead"], "readonly", function (tx, box) {
      box.value = { queue: 0, dead: 0 };
      var q = tx.objectStore("queue").count();
      q.onsuccess = function () { box.value.queue = q.result; };
      var d = tx.objectStore("dead").count();
      d.onsuccess = function () { box.value.dead = d.result; };
    });
  }

  function updateQueueCount() {
    return counts().then(function (c) {
      var el = document.querySelector("[data-queue]");
      if (el) el.textContent = String(c.queue);
      // Staff see the labelled count only while answers wait to be sent; citizens see nothing.
      var line = document.getElementById("queue");
      if (line) line.hidden = c.queue === 0;
      return c;
    }).catch(function () { return { queue: 0, dead: 0 }; });
  }

  // ------------------------------------------------------------------ helpers

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16)); // plain-http fallback (not a secure context)
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function nextSeq() {
    lastSeq = Math.max(Date.now(), lastSeq + 1);
    return lastSeq;
  }

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  function HttpError(status) { this.status = status; this.message = "HTTP " + status; }

  async function api(path, options) {
    options = options || {};
    var headers = { Accept: "application/json" };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    if (token && !options.anonymous) headers.Authorization = "Bearer " + token;
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, options.timeout || 30000);
    try {
      return await fetch(API + path, {
        method: options.method || "GET",
        headers: headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        cache: "no-store",
        credentials: "omit",
        signal: controller.signal
      });
    } finally {
      clearTimeout(timer);
    }
  }

  // Python's round() (half to even), so a face matches the level the server computes.
  function roundHalfEven(x) {
    var r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }

  function levelOf(question, value) {
    if (question.levels && question.levels.length >= value) return question.levels[value - 1];
    var scale = question.scale || 5;
    return 1 + roundHalfEven(4 * (value - 1) / (scale - 1));
  }

  function showIfHolds(condition, answers) {
    if (!condition) return true;
    var value = answers[condition.question];
    if (typeof value !== "number") return false;
    if (condition.min !== null && condition.min !== undefined && value < condition.min) return false;
    return !(condition.max !== null && condition.max !== undefined && value > condition.max);
  }

  function t(key) {
    var table = strings && (strings[lang] || strings.en);
    var text = table && table[key];
    if (!text && strings && strings.en) text = strings.en[key];
    return text || "";
  }

  function textIn(texts, fallback) {
    if (!texts) return fallback || "";
    return texts[lang] || texts.en || texts[Object.keys(texts)[0]] || fallback || "";
  }

  function survey() { return config && config.survey; }

  // The touchpoint was retired: the server refuses any tap given from then on.
  function outOfService() { return !!(config && config.retired_at); }

  // The screen the kiosk waits on between people.
  function resting() { return state === "rating" || state === "retired"; }

  function primaryRating() {
    var s = survey();
    if (!s || !s.questions) return null;
    var ratings = s.questions.filter(function (q) { return q.kind === "rating"; });
    return ratings.filter(function (q) { return q.primary; })[0] ||
      ratings.filter(function (q) { return q.indicator === "overall"; })[0] || ratings[0] || null;
  }

  function languages() {
    var offered = survey() && survey().languages;
    var list = LANGS.filter(function (l) { return !offered || !offered.length || offered.indexOf(l) !== -1; });
    return list.length ? list : LANGS.slice();
  }

  function defaultLang() {
    var list = languages();
    if (config && list.indexOf(config.lang) !== -1) return config.lang;
    var wanted = navigator.languages || [navigator.language || ""];
    for (var i = 0; i < wanted.length; i++) {
      var code = String(wanted[i]).toLowerCase().split("-")[0];
      if (list.indexOf(code) !== -1) return code;
    }
    return list[0];
  }

  function clearTimer(name) {
    clearTimeout(timers[name]);
    timers[name] = 0;
  }

  // ------------------------------------------------------------------ rendering

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function face(level, score, scale) {
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 40 40");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.setAttribute("class", "face");
    var parts = FACE_PARTS[level] || FACE_PARTS[3];
    var circle = document.createElementNS(SVG, "circle");
    circle.setAttribute("cx", "20");
    circle.setAttribute("cy", "20");
    circle.setAttribute("r", "18");
    circle.setAttribute("fill", parts[0]);
    circle.setAttribute("stroke", "#1a1a1a");
    circle.setAttribute("stroke-width", "1.2");
    svg.appendChild(circle);
    if (scale > 5) { // many levels: the number, on the level's colour
      var number = document.createElementNS(SVG, "text");
      number.setAttribute("x", "20");
      number.setAttribute("y", "26.5");
      number.setAttribute("text-anchor", "middle");
      number.setAttribute("font-size", "18");
      number.setAttribute("font-weight", "700");
      number.setAttribute("fill", "#1a1a1a");
      number.textContent = String(score);
      svg.appendChild(number);
      return svg;
    }
    [14, 26].forEach(function (cx) {
      var eye = document.createElementNS(SVG, "circle");
      eye.setAttribute("cx", String(cx));
      eye.setAttribute("cy", "16");
      eye.setAttribute("r", "2.4");
      eye.setAttribute("fill", "#1a1a1a");
      svg.appendChild(eye);
    });
    var mouth = document.createElementNS(SVG, "path");
    mouth.setAttribute("d", parts[1]);
    mouth.setAttribute("fill", "none");
    mouth.setAttribute("stroke", "#1a1a1a");
    mouth.setAttribute("stroke-width", "2.6");
    mouth.setAttribute("stroke-linecap", "round");
    svg.appendChild(mouth);
    return svg;
  }

  function labelOf(question, score) {
    var labels = question.labels && textIn(question.labels, null);
    return labels && labels[score - 1] ? labels[score - 1] : String(score);
  }

  // A row of faces for `question`; `onPick(score, button)` on a tap. Best last, as on the paper forms.
  function faceRow(question, className, hook, onPick) {
    var row = el("div", className);
    var scale = question.scale || 5;
    row.classList.add("n" + Math.min(scale, 11));
    var longest = 0; // one long word ("Удовлетворительно") must fit its column unbroken
    for (var s = 1; s <= scale; s++) {
      labelOf(question, s).split(/\s+/).forEach(function (word) { longest = Math.max(longest, word.length); });
    }
    if (longest > 11) row.classList.add("long-words");
    for (var score = 1; score <= scale; score++) {
      var button = el("button", "face-button");
      button.type = "button";
      button.setAttribute(hook, String(score));
      button.appendChild(face(levelOf(question, score), score, scale));
      button.appendChild(el("span", "face-label", labelOf(question, score)));
      button.addEventListener("click", onPick.bind(null, score, button));
      row.appendChild(button);
    }
    return row;
  }

  function applyStrings() {
    document.documentElement.lang = HTML_LANG[lang] || lang;
    document.querySelectorAll("[data-t]").forEach(function (node) {
      node.textContent = t(node.getAttribute("data-t"));
    });
    $("enroll-code").setAttribute("aria-label", t("enroll_label"));
    renderLangs();
    renderPlace();
  }

  function renderLangs() {
    var nav = $("langs");
    Array.prototype.slice.call(nav.querySelectorAll("button")).forEach(function (b) { nav.removeChild(b); });
    languages().forEach(function (code) {
      var button = el("button", "lang", ENDONYMS[code]);
      button.type = "button";
      button.lang = HTML_LANG[code];
      button.setAttribute("data-lang", code);
      button.setAttribute("aria-pressed", code === lang ? "true" : "false");
      button.addEventListener("click", function () { setLang(code); });
      nav.appendChild(button);
    });
  }

  function renderPlace() {
    var place = $("place");
    if (!config || !config.kiosk) { place.textContent = ""; return; }
    var k = config.kiosk;
    // The reader's language, then English, then the unit's own name (as the server's name_in).
    var names = k.unit_names || {};
    var name = names[lang] || names.en || k.unit_name || "";
    var counter = k.counter ? String(k.counter) : "";
    place.textContent = counter && name.indexOf(counter) === -1 ? name + " · " + counter : name;
  }

  function renderRating() {
    var question = primaryRating();
    var faces = $("faces");
    faces.textContent = "";
    faces.className = "faces";
    if (!question) {
      $("question").textContent = "";
      setStatus(config ? t("no_survey") : t("loading"));
      return;
    }
    setStatus("");
    $("question").textContent = textIn(question.text);
    var row = faceRow(question, "faces", "data-score", function (score) { onTap(score); });
    faces.className = row.className;
    while (row.firstChild) faces.appendChild(row.firstChild);
    renderCase();
  }

  function renderCase() {
    var box = $("case");
    if (pending && Date.now() - pending.at > INVITATION_TTL) pending = null;
    var invited = !!(pending && pending.case_ref);
    box.textContent = invited ? t("case_for").replace("{case}", pending.case_ref) : "";
    box.hidden = !invited;
    $("note").hidden = invited; // a rating tied to a case is not anonymous: no such promise then
  }

  function setStatus(text) {
    var status = $("status");
    status.textContent = text || "";
    status.hidden = !text;
  }

  // The questions asked after a tap: the survey's choice questions whose condition holds
  // ("what went well" after a good one, "what could be better" after a bad one), then its other
  // ratings. Free text and contact are not asked at a public stand.
  function reasonQuestions() {
    var primary = primaryRating();
    return (survey().questions || []).filter(function (q) {
      return q !== primary && (q.kind === "choice" || q.kind === "rating");
    }).sort(function (a, b) { return (a.kind === "choice" ? 0 : 1) - (b.kind === "choice" ? 0 : 1); });
  }

  function renderReasons() {
    var box = $("reasons");
    box.textContent = "";
    // Two columns on a landscape screen: reasons to choose, then the other ratings.
    var columns = { choice: el("div", "column choices"), rating: el("div", "column ratings") };
    box.appendChild(columns.choice);
    box.appendChild(columns.rating);
    reasonQuestions().forEach(function (question) {
      var block = el("div", "question");
      block.setAttribute("data-question", question.key);
      var heading = el("h2", null, textIn(question.text));
      heading.id = "q-" + question.key;
      block.appendChild(heading);
      var group;
      if (question.kind === "choice") {
        group = el("div", "options");
        (question.options || []).forEach(function (option) {
          var button = el("button", "option", textIn(option.text));
          button.type = "button";
          button.setAttribute("data-option", option.key);
          button.setAttribute("aria-pressed", "false");
          button.addEventListener("click", function () { toggleOption(question, option.key); });
          group.appendChild(button);
        });
      } else {
        group = faceRow(question, "small-faces", "data-value", function (score) { pickRating(question, score); });
        group.querySelectorAll("button").forEach(function (b) { b.setAttribute("aria-pressed", "false"); });
      }
      group.setAttribute("role", "group");
      group.setAttribute("aria-labelledby", heading.id);
      block.appendChild(group);
      columns[question.kind === "choice" ? "choice" : "rating"].appendChild(block);
    });
    refreshReasons();
  }

  // Show what applies to the answers so far; drop answers to questions that no longer apply.
  function refreshReasons() {
    if (!current) return;
    var answers = current.answers;
    reasonQuestions().forEach(function (question) {
      var block = $("reasons").querySelector('[data-question="' + question.key + '"]');
      if (!block) return;
      var show = showIfHolds(question.show_if, answers);
      block.hidden = !show;
      if (!show) delete answers[question.key];
      var value = answers[question.key];
      block.querySelectorAll("button").forEach(function (button) {
        var pressed = question.kind === "choice"
          ? (Array.isArray(value) ? value.indexOf(button.getAttribute("data-option")) !== -1
            : value === button.getAttribute("data-option"))
          : value === Number(button.getAttribute("data-value"));
        button.setAttribute("aria-pressed", pressed ? "true" : "false");
      });
    });
    $("reasons").querySelectorAll(".column").forEach(function (column) {
      column.hidden = !column.querySelector(".question:not([hidden])");
    });
  }

  function toggleOption(question, key) {
    var answers = current && current.answers;
    if (!answers) return;
    if (question.multiple) {
      var list = Array.isArray(answers[question.key]) ? answers[question.key].slice() : [];
      var at = list.indexOf(key);
      if (at === -1) list.push(key); else list.splice(at, 1);
      if (list.length) answers[question.key] = list; else delete answers[question.key];
    } else if (answers[question.key] === key) {
      delete answers[question.key];
    } else {
      answers[question.key] = key;
    }
    refreshReasons();
  }

  function pickRating(question, score) {
    var answers = current && current.answers;
    if (!answers) return;
    if (answers[question.key] === score) delete answers[question.key]; else answers[question.key] = score;
    refreshReasons();
  }

  // ------------------------------------------------------------------ screens

  function show(name) {
    state = name;
    document.body.setAttribute("data-kiosk-state", name);
    document.querySelectorAll("[data-screen]").forEach(function (screen) {
      screen.hidden = screen.getAttribute("data-screen") !== name;
    });
    var heading = document.querySelector('[data-screen="' + name + '"] h1');
    if (heading && name !== "enroll") heading.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }

  function showEnroll(message) {
    ["thanks", "idle", "rest"].forEach(clearTimer);
    current = null;
    pending = null;
    applyStrings();
    $("enroll-error").textContent = message || "";
    $("enroll-code").value = "";
    show("enroll");
    $("enroll-code").focus();
  }

  function showRating(resetLanguage) {
    ["thanks", "idle"].forEach(clearTimer);
    current = null;
    busy = false;
    finishing = false;
    if (updateReady) { location.reload(); return; } // a new app version is installed: rest is the moment
    if (resetLanguage && lang !== defaultLang()) {
      lang = defaultLang();
      applyStrings();
    }
    if (outOfService()) {
      pending = null; // no rating is taken here, for a case or otherwise
      setStatus("");
      show("retired");
    } else {
      renderRating();
      show("rating");
    }
    if (configStale) loadConfig();
    restTimer();
  }

  // A new config while resting: redraw the faces, or change screens when the retirement changed.
  function restAgain() {
    if (state === (outOfService() ? "retired" : "rating")) {
      if (state === "rating") renderRating();
    } else {
      showRating(false);
    }
  }

  // Resting: a language chosen by someone who walked away goes back to the kiosk's own.
  function restTimer() {
    clearTimer("rest");
    if (!resting()) return;
    timers.rest = setTimeout(function () {
      if (resting() && lang !== defaultLang()) showRating(true);
    }, settings.idle_seconds * 1000);
  }

  function idleTimer() {
    clearTimer("idle");
    if (state !== "reasons") return;
    timers.idle = setTimeout(function () { finishReasons("thanks"); }, settings.idle_seconds * 1000);
  }

  function showThanks() {
    clearTimer("idle");
    show("thanks");
    clearTimer("thanks");
    timers.thanks = setTimeout(function () { showRating(true); }, settings.thanks_seconds * 1000);
  }

  async function onTap(score) {
    var question = primaryRating();
    if (busy || state !== "rating" || !question || outOfService()) return;
    busy = true;
    var tappedAt = Date.now();
    var item = {
      id: uuid(), answers: {}, submitted_at: new Date().toISOString(), lang: lang, seq: nextSeq(), ready: false
    };
    item.answers[question.key] = score;
    if (pending && Date.now() - pending.at <= INVITATION_TTL) {
      ["case_ref", "service", "officer"].forEach(function (key) { if (pending[key]) item[key] = pending[key]; });
    }
    pending = null;
    try {
      await putItem(item); // committed before anything else shows
    } catch (error) {
      busy = false;
      console.error("could not store the tap", error);
      return;
    }
    updateQueueCount();
    current = { item: item, answers: Object.assign({}, item.answers) };
    if (pending && pending.at >= tappedAt) { // an invitation came in meanwhile: it wins
      await finishReasons("rating");
      return;
    }
    if (!reasonQuestions().length) { // nothing to ask, whatever the rating: straight to thanks
      await finishReasons("thanks");
      return;
    }
    renderReasons();
    show("reasons");
    busy = false;
    idleTimer();
  }

  async function finishReasons(next) {
    if (!current || finishing) return;
    finishing = true;
    clearTimer("idle");
    var done = current;
    var answers = {};
    Object.keys(done.answers).forEach(function (key) {
      var value = done.answers[key];
      if (!(Array.isArray(value) && !value.length)) answers[key] = value;
    });
    try {
      await finishItem(done.item.id, answers, lang);
    } catch (error) {
      console.error("could not finish the tap; it is sent as tapped", error);
    }
    current = null;
    finishing = false;
    if (next === "rating") showRating(false); else showThanks();
    triggerSync();
  }

  function setLang(code) {
    if (LANGS.indexOf(code) === -1) return;
    lang = code;
    applyStrings();
    if (state === "rating") { renderRating(); restTimer(); }
    if (state === "retired") restTimer();
    if (state === "reasons") {
      renderReasons(); // the answers so far are kept in `current`
      idleTimer();
    }
  }

  // ------------------------------------------------------------------ enrollment and config

  async function onEnroll(event) {
    event.preventDefault();
    var input = $("enroll-code");
    var submit = $("enroll-submit");
    var code = input.value.replace(/\D/g, "");
    if (!code || submit.disabled) return;
    var error = $("enroll-error");
    error.textContent = "";
    submit.disabled = true;
    submit.textContent = t("enroll_busy");
    var reply = null;
    try {
      reply = await api("enroll", { method: "POST", body: { code: code }, anonymous: true });
    } catch (ignored) {
      reply = null;
    }
    submit.disabled = false;
    submit.textContent = t("enroll_submit");
    if (!reply) { error.textContent = t("enroll_offline"); return; }
    if (reply.status === 429) { error.textContent = t("enroll_too_many"); return; }
    if (reply.status !== 201) {
      error.textContent = reply.status >= 500 ? t("enroll_offline") : t("enroll_bad_code");
      input.select();
      return;
    }
    var body = await reply.json();
    token = body.device_token;
    await kvPut("token", token);
    await kvPut("kiosk", body.kiosk || null);
    input.value = "";
    config = null;
    await kvDelete("config");
    await loadConfig();
    enrolled();
  }

  async function loadConfig() {
    var mine = session;
    var hadConfig = !!config;
    try {
      var reply = await api("config");
      if (mine !== session) return false;
      if (reply.status === 401) { lostEnrollment(); return false; }
      if (!reply.ok) throw new HttpError(reply.status);
      var body = await reply.json();
      // Read again when the survey changed or a tap was refused: redraw only when something changed.
      var changed = !hadConfig || JSON.stringify(body) !== JSON.stringify(config);
      if (changed) {
        await kvPut("config", body);
        applyConfig(body);
      }
      configStale = false;
      clearTimer("config");
      reachable();
      if (!changed) return true;
      if (!hadConfig || languages().indexOf(lang) === -1) lang = defaultLang();
      applyStrings();
      if (resting() && !busy) restAgain();
      return true;
    } catch (error) {
      // Offline: keep the cached survey and try again later.
      if (!config || configStale) {
        clearTimer("config");
        timers.config = setTimeout(function () {
          if (mine === session && (!config || configStale) && resting()) loadConfig();
        }, 5000);
      }
      return false;
    }
  }

  // A retirement (or its undoing) from a heartbeat: kept with the config, shown when the kiosk rests.
  function applyRetirement(retiredAt) {
    retiredAt = retiredAt || null;
    if ((config.retired_at || null) === retiredAt) return;
    config = Object.assign({}, config, { retired_at: retiredAt });
    kvPut("config", config).catch(function (error) { console.error("could not keep the config", error); });
    if (resting() && !busy) restAgain();
  }

  function applyConfig(body) {
    config = body;
    settings = Object.assign({}, DEFAULT_SETTINGS);
    Object.keys(DEFAULT_SETTINGS).forEach(function (key) {
      var value = body && body.settings && Number(body.settings[key]);
      if (value > 0) settings[key] = value;
    });
  }

  async function loadStrings() {
    try {
      var reply = await fetch(new URL("strings.json", BASE).href, { cache: "no-cache", credentials: "omit" });
      if (!reply.ok) return;
      var body = await reply.json();
      strings = body;
      await kvPut("strings", body);
      applyStrings();
    } catch (ignored) { /* the copy in IndexedDB serves */ }
  }

  function enrolled() {
    session += 1;
    var mine = session;
    sync.backoff = 0; // a fresh start: whatever failed before is tried again now
    sync.retryAt = 0;
    sync.offline = false;
    lang = defaultLang();
    applyStrings();
    showRating(false);
    invitationLoop(mine);
    clearTimer("heartbeat");
    timers.heartbeat = setTimeout(function () { heartbeat(mine); }, 500);
    triggerSync();
  }

  async function lostEnrollment() {
    if (!token) return;
    session += 1; // stops the loops of this enrollment
    token = null;
    config = null;
    ["heartbeat", "sync", "config"].forEach(clearTimer);
    try {
      await kvDelete("token");
      await kvDelete("config");
    } catch (ignored) { /* nothing more to do */ }
    lang = defaultLang();
    showEnroll(t("enroll_revoked")); // the queue stays: it is sent after the next enrollment
  }

  // ------------------------------------------------------------------ loops

  // A request to the server just worked: a sync waiting out a network outage runs now.
  function reachable() {
    if (sync.offline && sync.backoff) {
      sync.backoff = 0;
      sync.retryAt = 0;
      sync.offline = false;
      syncNow();
    }
  }

  function triggerSync() {
    var wait = sync.backoff ? sync.retryAt - Date.now() : 0;
    if (wait > 0) { // backing off: make sure the retry is scheduled
      if (!timers.sync) scheduleSync(wait);
      return;
    }
    syncNow();
  }

  function scheduleSync(ms) {
    clearTimer("sync");
    timers.sync = setTimeout(syncNow, ms);
  }

  async function syncNow() {
    if (!token) return;
    if (sync.running) { sync.again = true; return; }
    sync.running = true;
    sync.again = false;
    clearTimer("sync");
    var delay = settings.sync_seconds * 1000;
    var lost = false;
    try {
      for (;;) {
        var batch = await readyBatch(BATCH);
        if (!batch.length || !token) break;
        var items = batch.map(function (item) {
          var wire = { id: item.id, answers: item.answers, submitted_at: item.submitted_at, lang: item.lang };
          ["case_ref", "service", "officer"].forEach(function (key) { if (item[key]) wire[key] = item[key]; });
          return wire;
        });
        var sentWith = token;
        var reply = await api("sync", { method: "POST", body: { items: items }, timeout: 60000 });
        if (reply.status === 401) { // revoked; unless a new enrollment came meanwhile: then try again
          if (token === sentWith) lost = true; else sync.again = true;
          break;
        }
        if (reply.status !== 200) throw new HttpError(reply.status);
        var body = await reply.json();
        // Acknowledgements hold whatever happened meanwhile: the ids are the tablet's own.
        await applyResults(batch, body.results);
        if (refusedForTouchpoint(body.results)) recheckConfig();
        sync.backoff = 0;
        sync.retryAt = 0;
        sync.offline = false;
        sync.lastSync = new Date().toISOString();
        kvPut("last_sync", sync.lastSync).catch(function () {});
        await updateQueueCount();
        if (batch.length < BATCH) break;
      }
    } catch (error) {
      sync.backoff = sync.backoff ? Math.min(sync.backoff * 2, BACKOFF_MAX) : BACKOFF_MIN;
      sync.offline = !(error instanceof HttpError);
      delay = sync.backoff;
      sync.retryAt = Date.now() + delay;
    } finally {
      sync.running = false;
    }
    if (lost) { lostEnrollment(); return; }
    if (!token) return;
    if (sync.again && !sync.backoff) delay = 0;
    sync.again = false;
    scheduleSync(delay);
  }

  // A tap refused because of the touchpoint (retired since the config was read): read it again now.
  function refusedForTouchpoint(results) {
    return (results || []).some(function (r) { return r && r.status === "rejected" && r.field === "touchpoint"; });
  }

  function recheckConfig() {
    configStale = true;
    if (resting() && !busy) loadConfig();
  }

  async function heartbeat(mine) {
    if (mine !== session || !token) return;
    try {
      var c = await updateQueueCount();
      var level = null;
      if (battery) level = battery.level;
      var reply = await api("heartbeat", {
        method: "POST",
        body: { queue: c.queue, dead_letters: c.dead, app_version: APP_VERSION, last_sync: sync.lastSync,
                battery: typeof level === "number" ? Math.max(0, Math.min(1, level)) : null }
      });
      if (mine !== session) return;
      if (reply.status === 401) { lostEnrollment(); return; }
      if (reply.ok) {
        reachable();
        var body = await reply.json();
        var cached = survey();
        if (body && typeof body.survey_version === "number" && (!cached || cached.version !== body.survey_version)) {
          configStale = true; // picked up the next time the kiosk rests on the rating screen
        }
        // The beat says whether the touchpoint is retired: applied at once, no config read needed. An
        // older server does not say, so at rest the config is read again instead.
        if (body && "retired_at" in body && config && !configStale) applyRetirement(body.retired_at);
        else if (resting() && !busy) loadConfig();
      }
    } catch (ignored) { /* offline: report next time */ }
    if (mine !== session) return;
    clearTimer("heartbeat");
    timers.heartbeat = setTimeout(function () { heartbeat(mine); }, settings.heartbeat_seconds * 1000);
  }

  async function invitationLoop(mine) {
    var failures = 0;
    while (mine === session && token) {
      var started = Date.now();
      try {
        var reply = await api("invitation?wait=" + POLL_WAIT, { timeout: (POLL_WAIT + 15) * 1000 });
        if (mine !== session) return;
        if (reply.status === 401) { lostEnrollment(); return; }
        if (!reply.ok) throw new HttpError(reply.status);
        var body = await reply.json();
        failures = 0;
        reachable();
        if (body && body.invitation) onInvitation(body.invitation);
        else if (Date.now() - started < 1000) await sleep(1000); // a server that does not wait
      } catch (error) {
        failures += 1;
        await sleep(Math.min(1000 * failures, 5000));
      }
    }
  }

  // The counter's software ended a case: the rating screen, now, for that case.
  function onInvitation(invitation) {
    pending = {
      case_ref: invitation.case_ref || null, service: invitation.service || null,
      officer: invitation.officer || null, at: Date.now()
    };
    var fresh = lang !== defaultLang();
    if (fresh) lang = defaultLang(); // a new person: the kiosk's own language
    if (fresh) applyStrings();
    if (state === "reasons" && current) {
      finishReasons("rating"); // the previous tap is already queued; its reasons end here
    } else if (resting() || state === "thanks") {
      if (!busy) showRating(false);
    }
  }

  // ------------------------------------------------------------------ the stand itself

  function trapBack() {
    history.replaceState({ kiosk: 0 }, "", location.href);
    history.pushState({ kiosk: 1 }, "", location.href);
    window.addEventListener("popstate", function () { history.pushState({ kiosk: 1 }, "", location.href); });
    document.addEventListener("contextmenu", function (event) { event.preventDefault(); });
  }

  function keepAwake() {
    if (!("wakeLock" in navigator)) return;
    var request = function () {
      if (document.visibilityState !== "visible" || wakeLock) return;
      navigator.wakeLock.request("screen").then(function (lock) {
        wakeLock = lock;
        lock.addEventListener("release", function () { wakeLock = null; });
      }).catch(function () { /* not allowed here */ });
    };
    document.addEventListener("visibilitychange", request);
    request();
  }

  function registerWorker() {
    if (!("serviceWorker" in navigator)) return;
    var hadController = !!navigator.serviceWorker.controller;
    navigator.serviceWorker.addEventListener("controllerchange", function () {
      if (!hadController) { hadController = true; return; } // the first install: nothing to reload
      updateReady = true;
      if (resting() && !busy) location.reload();
    });
    navigator.serviceWorker.register(new URL("sw.js", BASE).href, { scope: BASE.pathname }).catch(function (error) {
      console.warn("service worker not registered", error);
    });
  }

  // Ask the browser not to evict the queue under storage pressure: unsent taps live there.
  function keepStorage() {
    if (navigator.storage && navigator.storage.persist) {
      navigator.storage.persist().catch(function () {});
    }
  }

  function watchBattery() {
    if (!navigator.getBattery) return;
    navigator.getBattery().then(function (manager) { battery = manager; }).catch(function () {});
  }

  async function start() {
    if (location.pathname + "/" === BASE.pathname) { // /kiosk -> /kiosk/: the service worker's scope
      location.replace(BASE.href + location.search);
      return;
    }
    trapBack();
    registerWorker();
    keepStorage();
    keepAwake();
    watchBattery();
    $("enroll-form").addEventListener("submit", onEnroll);
    document.querySelector('[data-action="done"]').addEventListener("click", function () { finishReasons("thanks"); });
    ["pointerdown", "keydown"].forEach(function (type) {
      document.addEventListener(type, function () {
        if (state === "reasons") idleTimer();
        if (resting()) restTimer();
      }, true);
    });
    try {
      db = await openDb();
      await readyAll();
      lastSeq = await lastQueuedSeq();
      strings = (await kvGet("strings")) || null;
      token = (await kvGet("token")) || null;
      var cached = (await kvGet("config")) || null;
      if (cached) applyConfig(cached);
      sync.lastSync = (await kvGet("last_sync")) || null;
    } catch (error) {
      console.error("IndexedDB is not available", error);
      setStatus("IndexedDB");
      return;
    }
    lang = defaultLang();
    if (!strings) await loadStrings(); else loadStrings();
    applyStrings();
    updateQueueCount();
    if (!token) { showEnroll(""); return; }
    enrolled();
    if (!config) setStatus(t("loading"));
    loadConfig();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
