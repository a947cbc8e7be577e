/* A screen that has never connected (one just paired): ask every two seconds, for two
   minutes, whether it has; when it has, show the page again with its state. */
(function () {
  "use strict";
  var me = document.getElementById("screen-state-poll");
  if (!me) { return; }
  var url = me.getAttribute("data-state-url");
  var started = Date.now();
  var ask = function () {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (state) {
        if (state.online || state.seen) { window.location.reload(); return; }
        if (Date.now() - started < 120000) { setTimeout(ask, 2000); }
      })
      .catch(function () { if (Date.now() - started < 120000) { setTimeout(ask, 4000); } });
  };
  setTimeout(ask, 2000);
})();
