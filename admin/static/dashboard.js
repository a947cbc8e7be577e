/* Cunping dashboard: live screen counts over Socket.IO ("/dashboard"), and screenshots that
   appear without a reload. The page is complete without this script (server-rendered numbers);
   this only keeps it current. */
(function () {
  "use strict";

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      if (timer) { clearTimeout(timer); }
      timer = setTimeout(function () { timer = null; fn(); }, ms);
    };
  }

  function setText(el, value) {
    var text = value === null || value === undefined ? "—" : String(value);
    if (el.textContent !== text) {
      el.textContent = text;
      el.classList.remove("flash-num");
      void el.offsetWidth; // restart the highlight
      el.classList.add("flash-num");
    }
  }

  // --- the dashboard: live counts ---
  var dash = document.getElementById("dashboard");
  if (dash && window.io) {
    var live = document.getElementById("live");
    var countsUrl = dash.getAttribute("data-counts-url");
    var labels = { online: null, offline: null };
    document.querySelectorAll(".state-cell").forEach(function (cell) {
      var badge = cell.querySelector(".state");
      if (!badge) { return; }
      if (cell.getAttribute("data-online") === "true") { labels.online = badge.textContent; }
      else { labels.offline = badge.textContent; }
    });

    function markScreen(code, online) {
      var row = document.querySelector('#screens-now tr[data-code="' + code + '"]');
      if (!row) { return; }
      var cell = row.querySelector(".state-cell");
      var badge = cell && cell.querySelector(".state");
      if (badge) {
        cell.setAttribute("data-online", online ? "true" : "false");
        badge.className = "state " + (online ? "state-online" : "state-offline");
        badge.textContent = (online ? labels.online : labels.offline) || (online ? "ONLINE" : "OFFLINE");
      }
      var button = row.querySelector("button");
      if (button) { button.disabled = !online; }
    }

    var refresh = debounce(function () {
      fetch(countsUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (data) {
          dash.querySelectorAll("[data-count]").forEach(function (el) {
            var key = el.getAttribute("data-count");
            if (key in data) { setText(el, data[key]); }
          });
          Object.keys(data.screens || {}).forEach(function (code) {
            markScreen(code, data.screens[code]);
          });
        })
        .catch(function () { /* the next event or reconnect refetches */ });
    }, 250);

    var socket = io("/dashboard", { transports: ["websocket", "polling"] });
    socket.on("connect", function () {
      live.setAttribute("data-state", "on");
      live.textContent = dash.getAttribute("data-live-on");
      refresh(); // whatever changed while we were not listening
    });
    socket.on("disconnect", function () {
      live.setAttribute("data-state", "off");
      live.textContent = dash.getAttribute("data-live-off");
    });
    socket.on("presence", function (event) {
      if (event && typeof event.screen === "string") { markScreen(event.screen, !!event.online); }
      refresh();
    });
  }

  // --- "show all" screens offline for long, without a reload ---
  var more = document.getElementById("more-offline");
  if (more) {
    more.addEventListener("click", function (event) {
      var hidden = document.querySelectorAll("tr.more-offline");
      if (!hidden.length) { return; } // only the first rows were sent: load the whole list
      event.preventDefault();
      hidden.forEach(function (row) { row.hidden = false; });
      more.parentNode.hidden = true;
    });
  }

  // --- one screen: wait for the screenshot ---
  var shot = document.getElementById("screen-shot");
  if (shot && shot.getAttribute("data-pending") === "true") {
    var statusUrl = shot.getAttribute("data-status-url");
    var img = document.getElementById("shot-img");
    var started = Date.now();
    var poll = function () {
      fetch(statusUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (data) {
          if (data.latest && img.getAttribute("src") !== data.latest.url) {
            img.src = data.latest.url;
            img.removeAttribute("width");
            img.removeAttribute("height");
            document.getElementById("shot-figure").hidden = false;
            document.getElementById("shot-wait").hidden = true;
            var none = document.getElementById("shot-none");
            if (none) { none.hidden = true; }
          }
          if (data.pending && Date.now() - started < 70000) {
            setTimeout(poll, 1000);
          } else {
            document.getElementById("shot-wait").hidden = true;
            shot.setAttribute("data-pending", "false");
            if (data.pending) { document.getElementById("shot-late").hidden = false; }
            else if (data.latest) { window.location.reload(); } // the caption and time
          }
        })
        .catch(function () { setTimeout(poll, 3000); });
    };
    setTimeout(poll, 800);
  }
})();
