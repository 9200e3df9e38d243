// Live reload for the editor's preview: the server says "change" when a template or
// digest.toml is saved, and the page reloads. Without JavaScript nothing happens.
(function () {
  "use strict";
  var marker = document.querySelector("[data-live-reload]");
  if (!marker || !window.EventSource) return;
  var source = new EventSource(marker.getAttribute("data-live-reload"));
  source.addEventListener("change", function () {
    source.close();
    window.location.reload();
  });
  source.addEventListener("open", function () {
    marker.setAttribute("data-live-reload-state", "on");
  });
})();
