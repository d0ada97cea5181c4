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
