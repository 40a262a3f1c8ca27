// Switchboard console: small progressive enhancements; every page works without them.
(function () {
  "use strict";
  function onReady(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }
  onReady(function () {
    // "Dial SIP Client" shows the SIP client fields only when it is on.
    document.querySelectorAll("[data-shown-by]").forEach(function (box) {
      var toggle = document.getElementById(box.getAttribute("data-shown-by"));
      if (!toggle) return;
      var sync = function () { box.hidden = !toggle.checked; };
      toggle.addEventListener("change", sync);
      sync();
    });
    // Ask before removing.
    document.querySelectorAll("form.confirm").forEach(function (f) {
      f.addEventListener("submit", function (e) {
        if (!window.confirm(f.getAttribute("data-confirm") || "Remove?")) e.preventDefault();
      });
    });
    // Focus the error summary after a refused save, so keyboard and screen-reader users hear it.
    var problem = document.getElementById("problem");
    if (problem) problem.focus();
    // Ladder: selecting an arrow opens that message's text below.
    function reveal() {
      var id = decodeURIComponent(location.hash.slice(1));
      var d = id && document.getElementById(id);
      if (d && d.tagName === "DETAILS") {
        document.querySelectorAll("ol.events details.shown").forEach(function (x) { x.classList.remove("shown"); });
        d.open = true;
        d.classList.add("shown");
        d.scrollIntoView({ block: "nearest" });
      }
    }
    window.addEventListener("hashchange", reveal);
    reveal();
  });
})();
