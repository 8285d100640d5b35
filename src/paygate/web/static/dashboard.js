/* Dashboard niceties; every page works without them. */
(function () {
  "use strict";

  // Ask before irreversible actions (forms with data-confirm).
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });

  // One submission per form: the server would replay a duplicate anyway (idempotency), this just says so.
  document.querySelectorAll("form[method='post']").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (event.defaultPrevented) return;
      var button = form.querySelector("button[type='submit']");
      if (button) {
        if (form.getAttribute("data-submitted")) { event.preventDefault(); return; }
        form.setAttribute("data-submitted", "1");
        button.setAttribute("aria-busy", "true");
      }
    });
  });

  // Copy buttons (the webhook secret).
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var text = button.getAttribute("data-copy");
      if (navigator.clipboard) {
        navigator.clipboard.writeText(text).then(function () { button.textContent = "Copied"; });
      }
    });
  });

  // Copy buttons for code snippets (the integration docs): the target element's text, exactly as shown.
  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    button.addEventListener("click", function () {
      var target = document.getElementById(button.getAttribute("data-copy-target"));
      if (!target || !navigator.clipboard) return;
      navigator.clipboard.writeText(target.textContent).then(function () {
        button.textContent = "Copied";
        button.setAttribute("data-copied", "true");
        setTimeout(function () { button.textContent = "Copy"; button.removeAttribute("data-copied"); }, 2000);
      }, function () { button.textContent = "Copy failed"; });
    });
  });
})();
