/* gitml web viewer: the colour theme, set before the page is drawn (loaded without defer).
 * The system's light/dark preference, unless the top bar's toggle chose one (kept in localStorage). */
(function () {
  "use strict";
  var KEY = "gitml-theme";
  var query = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  function saved() {
    try { return window.localStorage.getItem(KEY); } catch (e) { return null; }
  }
  function apply() {
    var choice = saved();
    var dark = choice ? choice === "dark" : !!(query && query.matches);
    document.documentElement.setAttribute("data-theme", dark ? "dark" : "light");
  }
  apply();
  if (query && query.addEventListener) query.addEventListener("change", function () {
    if (!saved()) {
      apply();
      document.dispatchEvent(new CustomEvent("gitml:theme"));
    }
  });
})();
