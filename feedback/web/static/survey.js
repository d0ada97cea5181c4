// Progressive enhancement for the survey page; everything works without it.
(function () {
  "use strict";
  var form = document.querySelector("form.survey");
  if (!form) return;

  function ratingOf(key) {
    var checked = form.querySelector('input[name="q.' + key + '"]:checked');
    return checked ? parseInt(checked.value, 10) : null;
  }

  // Follow-up questions (e.g. reasons after a low rating) appear only when their condition holds.
  var conditional = form.querySelectorAll("[data-show-if]");
  function updateConditional() {
    conditional.forEach(function (el) {
      var value = ratingOf(el.getAttribute("data-show-if"));
      var min = el.getAttribute("data-min"), max = el.getAttribute("data-max");
      var show = value !== null && (min === "" || value >= +min) && (max === "" || value <= +max);
      el.hidden = !show;
      if (!show) {
        el.querySelectorAll("input").forEach(function (input) { input.checked = false; });
      }
    });
  }

  // The contact field shows once consent is given; without consent nothing is sent.
  var consent = form.querySelector('input[name="contact_consent"]');
  var contactField = form.querySelector(".contact-field");
  function updateContact() {
    if (!consent || !contactField) return;
    contactField.hidden = !consent.checked;
    if (!consent.checked) contactField.querySelector("input").value = "";
  }

  form.addEventListener("change", function () { updateConditional(); updateContact(); });
  updateConditional();
  updateContact();

  // One tap, one response: the id was made when the page was rendered; block a double submit.
  form.addEventListener("submit", function () {
    var button = form.querySelector(".send");
    window.setTimeout(function () { button.disabled = true; }, 0);
  });

  var error = document.getElementById("form-error");
  if (error) error.focus();
})();
