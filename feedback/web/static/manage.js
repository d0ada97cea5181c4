/* === Manager web app: shared behaviour (auth/layout). Page-specific sections follow at the end. === */
(function () {
  "use strict";
  // The CSRF token of this page, for scripts that post with fetch(): header x-csrftoken.
  var meta = document.querySelector('meta[name="csrf-token"]');
  window.fbManage = {
    csrfToken: meta ? meta.getAttribute("content") : "",
    post: function (url, body) {
      return fetch(url, {
        method: "POST", credentials: "same-origin",
        headers: {"x-csrftoken": window.fbManage.csrfToken, "content-type": "application/json",
                  "accept": "application/json"},
        body: JSON.stringify(body || {})
      });
    }
  };
  // Forms with data-confirm="question" ask before they are sent (disable, reset password…).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });
})();
/* === end of shared behaviour === */

/* === small screens: a table that scrolls in its own box can be scrolled from the keyboard === */
(function () {
  "use strict";
  var BOXES = ".table-wrap, .dash-table-wrap, table.data:not(.cards)";
  function label(box) {
    var caption = box.querySelector("caption");
    return caption ? caption.textContent.trim() : "";
  }
  function mark() {
    document.querySelectorAll(BOXES).forEach(function (box) {
      var scrolls = box.scrollWidth > box.clientWidth + 1;
      if (scrolls && !box.hasAttribute("tabindex")) {
        box.setAttribute("tabindex", "0");
        box.setAttribute("data-scroll-box", "");
        if (!box.getAttribute("aria-label") && !box.getAttribute("aria-labelledby") && box.tagName !== "TABLE") {
          box.setAttribute("role", "region");
          box.setAttribute("aria-label", label(box));
        }
      } else if (!scrolls && box.hasAttribute("data-scroll-box")) {
        box.removeAttribute("tabindex");
        box.removeAttribute("data-scroll-box");
      }
    });
  }
  mark();
  window.addEventListener("resize", mark);
})();
/* === end of small screens === */
