/* The alert page's delivery table, refreshed every few seconds while the alert is in force.
   Without JavaScript the page shows the table as it was when loaded (and a Reload link). */
(function () {
  "use strict";
  var card = document.getElementById("delivery-card");
  if (!card || !card.dataset.url) { return; }
  var every = Math.max(2, parseInt(card.dataset.refresh, 10) || 3) * 1000;
  var body = document.getElementById("delivery-body");
  function poll() {
    fetch(card.dataset.url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (data && typeof data.html === "string") { body.innerHTML = data.html; }
        if (data && data.status !== "active") { return; }  /* ended: stop asking */
        setTimeout(poll, every);
      })
      .catch(function () { setTimeout(poll, every * 2); });
  }
  setTimeout(poll, every);
})();
