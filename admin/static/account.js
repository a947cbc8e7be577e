// The new API token's field selects itself when focused, ready to copy (no inline handlers:
// the admin's Content-Security-Policy allows scripts from this site's files only).
(function () {
  var field = document.getElementById("new-secret");
  if (field) {
    field.addEventListener("focus", function () { field.select(); });
  }
})();
