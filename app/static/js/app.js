/* Cadence: small progressive enhancements. Every page works without JavaScript. */
(function () {
  "use strict";

  function on(selector, event, handler) {
    document.querySelectorAll(selector).forEach(function (el) { el.addEventListener(event, handler); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    on("[data-print]", "click", function () { window.print(); });
    on("[data-autosubmit]", "change", function (e) { e.target.form.submit(); });

    on("[data-toggle-all]", "click", function (e) {
      var open = e.currentTarget.getAttribute("data-toggle-all") === "open";
      document.querySelectorAll("details.phase, details.cycle").forEach(function (d) { d.open = open; });
    });

    // Open the phase and cycle that hold the event named in the URL (#ev-123).
    if (location.hash && location.hash.indexOf("#ev-") === 0) {
      var target = document.getElementById(location.hash.slice(1));
      for (var el = target; el; el = el.parentElement) {
        if (el.tagName === "DETAILS") { el.open = true; }
      }
      if (target) { target.scrollIntoView({ block: "center" }); }
    }

    // Reschedule: show the cascade preview as soon as a date is picked, without reloading.
    var form = document.querySelector("[data-preview-form]");
    if (form && window.fetch && window.FormData) {
      var timer = null;
      var sequence = 0;
      var refresh = function () {
        var area = document.getElementById("preview-area");
        var dateInput = form.querySelector("input[name=new_date]");
        if (!area || !dateInput || !dateInput.value) { return; }
        var mine = ++sequence;
        area.classList.add("loading");
        fetch(form.getAttribute("data-fragment-url"), {
          method: "POST",
          body: new FormData(form),
          credentials: "same-origin",
          headers: { "X-Requested-With": "fetch" }
        }).then(function (response) {
          return response.text();
        }).then(function (html) {
          if (mine !== sequence) { return; }
          var current = document.getElementById("preview-area");
          if (current) { current.outerHTML = html; }
        }).catch(function () {
          var current = document.getElementById("preview-area");
          if (current) { current.classList.remove("loading"); }
        });
      };
      var later = function () { clearTimeout(timer); timer = setTimeout(refresh, 450); };
      form.addEventListener("submit", function (e) { e.preventDefault(); refresh(); });
      form.querySelectorAll("input[name=new_date]").forEach(function (el) {
        el.addEventListener("change", refresh);
      });
      form.querySelectorAll("textarea[name=reason]").forEach(function (el) {
        el.addEventListener("input", later);
      });
    }
  });
})();
