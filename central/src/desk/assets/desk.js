// tend maintenance desk: refreshes the page's #live section in place every
// `data-refresh` seconds, unless someone is typing (a focused field or a
// resolution already typed), so a refresh never eats the close form. Filters
// apply as soon as one is changed. Without JavaScript the page still works; it
// just does not refresh by itself.
(function () {
  "use strict";
  function busy() {
    var active = document.activeElement;
    if (active && /^(TEXTAREA|INPUT|SELECT)$/.test(active.tagName)) return true;
    var areas = document.querySelectorAll("textarea");
    for (var i = 0; i < areas.length; i++) {
      if (areas[i].value.trim() !== "") return true;
    }
    return false;
  }
  function refresh() {
    if (document.hidden || busy()) return;
    fetch(location.href, { credentials: "same-origin", headers: { "X-Desk-Refresh": "1" } })
      .then(function (response) {
        if (response.redirected) { location.reload(); return null; }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        if (html === null || busy()) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        var current = document.getElementById("live");
        if (fresh && current) current.replaceWith(fresh);
        document.body.classList.remove("stale");
      })
      .catch(function () { document.body.classList.add("stale"); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var live = document.getElementById("live");
    var seconds = live ? parseInt(live.getAttribute("data-refresh"), 10) : 0;
    if (seconds > 0) setInterval(refresh, seconds * 1000);
    var selects = document.querySelectorAll("form.filters select");
    for (var i = 0; i < selects.length; i++) {
      selects[i].addEventListener("change", function (event) { event.target.form.submit(); });
    }
  });
})();
