// mq dashboard: the only script. Every element with data-live="URL" is refreshed from URL
// every two seconds (an HTML fragment rendered and escaped by the server); when the
// dashboard itself does not answer, #live-status says so and the last counts stay.
(function () {
  "use strict";
  var status = document.getElementById("live-status");
  function say(text, stale) {
    if (!status) return;
    status.textContent = text;
    status.className = stale ? "stale" : "";
  }
  function refresh() {
    document.querySelectorAll("[data-live]").forEach(function (el) {
      fetch(el.getAttribute("data-live"), { credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          if (!r.ok && r.status !== 503) throw new Error("HTTP " + r.status);
          return r.text();
        })
        .then(function (html) {
          el.innerHTML = html;
          say("live: updated " + new Date().toLocaleTimeString(), false);
        })
        .catch(function () {
          say("the dashboard does not answer; showing the last counts", true);
        });
    });
  }
  if (document.querySelector("[data-live]")) setInterval(refresh, 2000);
})();
