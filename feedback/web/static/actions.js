// Live corrective-action queue: listens to /manage/actions/stream and refreshes the list or board
// region in place when an action is opened or changes, announcing it in the aria-live region.
(function () {
  "use strict";
  var region = document.getElementById("actions-region");
  var live = document.getElementById("actions-live");
  if (!region || !window.EventSource) { return; }
  var onePage = region.getAttribute("data-action");  // the action page: only its own action matters
  var pending = null;
  var lastIds = [];

  function announce(text) {
    if (!live || !text) { return; }
    live.textContent = "";
    // A fresh text node after a tick makes screen readers read it even when it repeats.
    window.setTimeout(function () { live.textContent = text; }, 50);
  }

  function describe(doc, id) {
    var row = doc.getElementById("action-" + id);
    if (!row) { return ""; }
    var link = row.querySelector(".act-title") || row.querySelector("a");
    var status = row.querySelector(".act-status");
    var parts = [];
    if (link) {
      var title = link.textContent.trim();
      parts.push(title.charAt(0) === "#" ? title : "#" + id + " " + title);
    }
    if (status) { parts.push(status.textContent.trim()); }
    return parts.join(": ");
  }

  function refresh() {
    var ids = lastIds;
    lastIds = [];
    pending = null;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("actions-region");
        if (!fresh) { return; }
        // Keep focus where it was when the user is inside the region.
        var focused = document.activeElement && region.contains(document.activeElement)
          ? document.activeElement.getAttribute("href") : null;
        region.innerHTML = fresh.innerHTML;
        if (focused) {
          var again = region.querySelector('a[href="' + focused + '"]');
          if (again) { again.focus(); }
        }
        var said = ids.map(function (id) { return describe(doc, id); }).filter(Boolean);
        announce(said.join("; "));
        ids.forEach(function (id) {
          var row = document.getElementById("action-" + id);
          if (row) { row.classList.add("act-flash"); }
        });
      })
      .catch(function () { /* the next event tries again */ });
  }

  function onEvent(message) {
    var data;
    try { data = JSON.parse(message.data); } catch (e) { return; }
    if (onePage && String(data.id) !== onePage) { return; }
    if (lastIds.indexOf(data.id) < 0) { lastIds.push(data.id); }
    // Several events in a burst cost one re-read.
    if (!pending) { pending = window.setTimeout(refresh, 300); }
  }

  var source = new EventSource(region.getAttribute("data-stream"));
  source.addEventListener("action.opened", onEvent);
  source.addEventListener("action.changed", onEvent);
  source.addEventListener("open", function () { document.documentElement.setAttribute("data-live", "on"); });
  window.addEventListener("pagehide", function () { source.close(); });
})();
