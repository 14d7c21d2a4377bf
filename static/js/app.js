// Small behaviours shared by every page. No inline scripts anywhere: the CSP forbids them.
(function () {
  "use strict";
  // The words come from the page, in its language (base.html's #toast data attributes).
  function words(name) {
    var toast = document.getElementById("toast");
    return (toast && toast.getAttribute("data-" + name)) || "";
  }
  // A successful htmx POST answers with HX-Trigger; show its message as a toast.
  document.addEventListener("members-changed", function () {
    showToast(words("saved"));
  });
  function showToast(text) {
    var toast = document.getElementById("toast");
    if (!toast || !text) return;
    toast.textContent = text;
    toast.hidden = false;
    clearTimeout(showToast.timer);
    showToast.timer = setTimeout(function () { toast.hidden = true; }, 3000);
  }
  // Staff viewing a tenant read-only: a refused htmx request answers 403 with this trigger.
  // Show the reason where the button's result would go (or right after its form).
  document.addEventListener("view-as-refused", function (event) {
    var text = (event.detail && event.detail.message) || words("refused");
    var source = event.target;
    var form = source.closest ? source.closest("form") || source : source;
    var selector = source.getAttribute && source.getAttribute("hx-target");
    var target = selector ? document.querySelector(selector) : null;
    var note = document.createElement("div");
    note.className = "result bad";
    note.setAttribute("role", "alert");
    note.setAttribute("data-view-as-refused", "");
    note.textContent = text;
    if (target && target.hasAttribute("aria-live")) {
      target.replaceChildren(note);
    } else {
      var old = form.nextElementSibling;
      if (old && old.hasAttribute("data-view-as-refused")) old.remove();
      form.insertAdjacentElement("afterend", note);
    }
    showToast(text);
  });
  // Forms that ask for confirmation carry data-confirm; htmx's own hx-confirm covers htmx forms.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);
})();
// Analytics filters: picking a date means a custom range.
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.hasAttribute || !input.hasAttribute("data-range-date")) return;
    var select = input.form && input.form.querySelector("[data-custom-range]");
    if (select) select.value = "custom";
  });
})();
// Delivery channels' sections are pages of their own (?section=…, no script needed). A link
// from before them (/channels/#identities) still lands where it points: on its section, or in
// the folded catalogue of kinds (opened).
(function () {
  "use strict";
  var nav = document.querySelector("nav[data-sections]");
  var id = decodeURIComponent(location.hash.slice(1));
  if (!nav || !id || document.getElementById(id)) {
    var target = id && document.getElementById(id);
    var folded = target && target.closest && target.closest("details");
    if (folded) { folded.open = true; target.scrollIntoView(); }
    return;
  }
  var moved = nav.getAttribute("data-sections-" + id.split("-")[0]);
  if (moved) location.replace(moved + location.hash);
})();
