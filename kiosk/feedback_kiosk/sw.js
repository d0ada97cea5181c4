// Service worker of the kiosk app: the shell comes from a versioned cache, so the tablet starts and
// works with no network; the API is never cached (the app keeps its queue and survey in IndexedDB).
"use strict";

var VERSION = "1.0.4"; // keep equal to APP_VERSION in app.js
var PREFIX = "feedback-kiosk-shell-";
var CACHE = PREFIX + VERSION;
var SHELL = ["./", "app.js", "kiosk.css", "manifest.webmanifest", "icon-192.png", "icon-512.png", "strings.json"];

function scopePath() {
  return new URL(self.registration.scope).pathname; // "/kiosk/"
}

self.addEventListener("install", function (event) {
  event.waitUntil(
    caches.open(CACHE)
      .then(function (cache) {
        return cache.addAll(SHELL.map(function (path) { return new Request(path, { cache: "reload" }); }));
      })
      .then(function () { return self.skipWaiting(); })
  );
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys()
      .then(function (keys) {
        return Promise.all(keys.filter(function (key) { return key.indexOf(PREFIX) === 0 && key !== CACHE; })
          .map(function (key) { return caches.delete(key); }));
      })
      .then(function () { return self.clients.claim(); })
  );
});

function fromCache(request) {
  return caches.open(CACHE).then(function (cache) {
    return cache.match(request, { ignoreSearch: true }).then(function (hit) { return hit || fetch(request); });
  });
}

// Interface strings follow the server's catalogues: the network when it answers, else the cache.
function networkFirst(request) {
  return caches.open(CACHE).then(function (cache) {
    return fetch(request).then(function (response) {
      if (response.ok) cache.put(request, response.clone());
      return response;
    }).catch(function () {
      return cache.match(request, { ignoreSearch: true }).then(function (hit) { return hit || Response.error(); });
    });
  });
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.indexOf("/api/") !== -1) return; // network only: never cache API calls
  var scope = scopePath();
  if (url.pathname.indexOf(scope) !== 0 && url.pathname + "/" !== scope) return;
  var rest = url.pathname.slice(scope.length);
  if (request.mode === "navigate" && (rest === "" || rest === "index.html" || url.pathname + "/" === scope)) {
    event.respondWith(fromCache(new Request(scope)));
    return;
  }
  if (rest === "strings.json") {
    event.respondWith(networkFirst(request));
    return;
  }
  if (rest === "sw.js") return;
  event.respondWith(fromCache(request));
});
